package policies

import (
	"strings"
	"testing"
)

func mustParse(t testing.TB, doc string) *Document {
	t.Helper()
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse(%s): %v", doc, err)
	}
	return d
}

func system(t testing.TB, name string) *Document {
	t.Helper()
	p, ok := SystemPolicy(name)
	if !ok {
		t.Fatalf("no system policy %s", name)
	}
	return p.Document
}

const (
	hz   = "cn-hangzhou"
	sh   = "cn-shanghai"
	acct = "1234567890"
)

var (
	nsJuzhong   = NamespaceResource(hz, acct, "juzhong")
	repoNginx   = RepositoryResource(hz, acct, "juzhong", "nginx")
	repoRedis   = RepositoryResource(hz, acct, "juzhong", "redis")
	repoOther   = RepositoryResource(hz, acct, "other", "nginx")
	repoNginxSH = RepositoryResource(sh, acct, "juzhong", "nginx")
)

type check struct {
	action, resource string
	want             Decision
}

func runChecks(t *testing.T, set *Set, checks []check) {
	t.Helper()
	for _, c := range checks {
		if got := set.Evaluate(Request{Action: c.action, Resource: c.resource}); got != c.want {
			t.Errorf("Evaluate(%s on %s) = %v, want %v", c.action, c.resource, got, c.want)
		}
		if got := set.Allowed(c.action, c.resource); got != (c.want == Allow) {
			t.Errorf("Allowed(%s on %s) = %v", c.action, c.resource, got)
		}
	}
}

func TestResourceNames(t *testing.T) {
	if nsJuzhong != "acs:cr:cn-hangzhou:1234567890:repository/juzhong" {
		t.Errorf("NamespaceResource = %s", nsJuzhong)
	}
	if repoNginx != "acs:cr:cn-hangzhou:1234567890:repository/juzhong/nginx" {
		t.Errorf("RepositoryResource = %s", repoNginx)
	}
}

// SPEC §9, worked case 1: read and pull everything in juzhong, nothing else.
func TestWorkedCase1ReadOnlyNamespace(t *testing.T) {
	set := Compile(mustParse(t, `{"Version":"1","Statement":[{"Effect":"Allow",
		"Action":["cr:Get*","cr:List*","cr:PullRepository"],
		"Resource":["acs:cr:*:*:repository/juzhong/*"]}]}`))
	runChecks(t, set, []check{
		{ActionPullRepository, repoNginx, Allow},
		{ActionPullRepository, repoRedis, Allow},
		{ActionPullRepository, repoNginxSH, Allow},
		{ActionGetRepository, repoNginx, Allow},
		{ActionListRepositoryTag, repoNginx, Allow},
		{ActionGetRepositoryManifest, repoNginx, Allow},
		{ActionGetBuildLog, repoNginx, Allow},
		{ActionPullRepository, repoOther, ImplicitDeny},
		{ActionPushRepository, repoNginx, ImplicitDeny},
		{ActionDeleteRepositoryTag, repoNginx, ImplicitDeny},
		// The namespace resource itself is not inside "juzhong/*" ...
		{ActionGetNamespace, nsJuzhong, ImplicitDeny},
		// ... and listing namespaces/repositories needs cr:List* on "*".
		{ActionListNamespace, AnyResource, ImplicitDeny},
		{ActionListRepository, AnyResource, ImplicitDeny},
	})
	withList := Compile(set0(t), mustParse(t, `{"Version":"1","Statement":[{"Effect":"Allow",
		"Action":["cr:ListNamespace","cr:ListRepository"],"Resource":"*"}]}`))
	runChecks(t, withList, []check{
		{ActionListNamespace, AnyResource, Allow},
		{ActionListRepository, AnyResource, Allow},
		{ActionPullRepository, repoNginx, Allow},
		{ActionPullRepository, repoOther, ImplicitDeny},
	})
}

func set0(t *testing.T) *Document {
	return mustParse(t, `{"Version":"1","Statement":[{"Effect":"Allow",
		"Action":["cr:Get*","cr:List*","cr:PullRepository"],
		"Resource":["acs:cr:*:*:repository/juzhong/*"]}]}`)
}

// SPEC §9, worked case 2: full rights on juzhong/nginx in cn-hangzhou, read on
// the namespace, nothing on the siblings or in another region.
func TestWorkedCase2OneRepository(t *testing.T) {
	set := Compile(mustParse(t, `{"Version":"1","Statement":[
		{"Effect":"Allow","Action":"cr:*","Resource":"acs:cr:cn-hangzhou:*:repository/juzhong/nginx"},
		{"Effect":"Allow","Action":["cr:Get*","cr:List*"],"Resource":"acs:cr:*:*:repository/juzhong"}]}`))
	runChecks(t, set, []check{
		{ActionPushRepository, repoNginx, Allow},
		{ActionPullRepository, repoNginx, Allow},
		{ActionDeleteRepositoryTag, repoNginx, Allow},
		{ActionDeleteRepository, repoNginx, Allow},
		{ActionCreateBuild, repoNginx, Allow},
		{ActionUpdateRepositorySecurityPolicy, repoNginx, Allow},
		{ActionGetNamespace, nsJuzhong, Allow},
		{ActionGetNamespaceSecurityPolicy, nsJuzhong, Allow},
		{ActionUpdateNamespace, nsJuzhong, ImplicitDeny},
		{ActionCreateRepository, nsJuzhong, ImplicitDeny},
		// Another region: denied.
		{ActionPushRepository, repoNginxSH, ImplicitDeny},
		{ActionPullRepository, repoNginxSH, ImplicitDeny},
		// Siblings: nothing.
		{ActionPullRepository, repoRedis, ImplicitDeny},
		{ActionPullRepository, RepositoryResource(hz, acct, "juzhong", "nginx2"), ImplicitDeny},
		{ActionGetRepository, repoRedis, ImplicitDeny},
		{ActionPullRepository, repoOther, ImplicitDeny},
		// cr:* never reaches ram actions.
		{ActionCreateUser, AnyResource, ImplicitDeny},
	})
}

// SPEC §9, worked case 3: cr:* on the namespace and everything in it.
func TestWorkedCase3WholeNamespace(t *testing.T) {
	set := Compile(mustParse(t, `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*",
		"Resource":["acs:cr:*:*:repository/juzhong","acs:cr:*:*:repository/juzhong/*"]}]}`))
	runChecks(t, set, []check{
		{ActionUpdateNamespace, nsJuzhong, Allow},
		{ActionDeleteNamespace, nsJuzhong, Allow},
		{ActionCreateRepository, nsJuzhong, Allow},
		{ActionPushRepository, repoNginx, Allow},
		{ActionPushRepository, repoNginxSH, Allow},
		{ActionDeleteTrigger, repoRedis, Allow},
		{ActionPushRepository, repoOther, ImplicitDeny},
		{ActionGetNamespace, NamespaceResource(hz, acct, "juzhong2"), ImplicitDeny},
		{ActionPushRepository, RepositoryResource(hz, acct, "juzhong2", "x"), ImplicitDeny},
		{ActionCreateNamespace, AnyResource, ImplicitDeny},
	})
}

func TestSystemPolicies(t *testing.T) {
	full := Compile(system(t, FullAccessPolicy))
	ro := Compile(system(t, ReadOnlyAccessPolicy))
	admin := Compile(system(t, AdministratorAccessPolicy))
	for _, a := range AllActions {
		for _, r := range []string{AnyResource, nsJuzhong, repoNginx} {
			isCR := strings.HasPrefix(a, "cr:")
			if got := full.Allowed(a, r); got != isCR {
				t.Errorf("FullAccess %s on %s = %v", a, r, got)
			}
			name := strings.TrimPrefix(a, "cr:")
			wantRO := isCR && (strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List") || a == ActionPullRepository)
			if got := ro.Allowed(a, r); got != wantRO {
				t.Errorf("ReadOnlyAccess %s on %s = %v, want %v", a, r, got, wantRO)
			}
			if !admin.Allowed(a, r) {
				t.Errorf("AdministratorAccess %s on %s denied", a, r)
			}
		}
	}
	if !admin.Allowed("ecs:RunInstances", "acs:ecs:*:*:instance/x") {
		t.Error("AdministratorAccess does not cover other services")
	}
	if len(SystemPolicies()) != 3 {
		t.Errorf("want 3 system policies")
	}
	for _, p := range SystemPolicies() {
		if !IsSystemPolicy(p.Name) || p.Description == "" {
			t.Errorf("system policy %+v", p)
		}
	}
	if IsSystemPolicy("administratoraccess") || IsSystemPolicy("mine") {
		t.Error("IsSystemPolicy is exact")
	}
	// SystemPolicies hands out copies.
	SystemPolicies()[0].Document.Statement[0].Action[0] = "cr:Nothing"
	if !Compile(system(t, FullAccessPolicy)).Allowed(ActionPushRepository, repoNginx) {
		t.Error("changing a returned system policy changed the original")
	}
}

func TestDenyBeatsAllow(t *testing.T) {
	deny := mustParse(t, `{"Version":"1","Statement":[{"Effect":"Deny",
		"Action":["cr:PushRepository","cr:Delete*"],"Resource":"acs:cr:*:*:repository/juzhong/*"}]}`)
	tests := []struct {
		name string
		docs []*Document
	}{
		{"deny first", []*Document{deny, system(t, FullAccessPolicy)}},
		{"deny last", []*Document{system(t, FullAccessPolicy), deny}},
		{"with admin", []*Document{system(t, AdministratorAccessPolicy), deny}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runChecks(t, Compile(tt.docs...), []check{
				{ActionPushRepository, repoNginx, Deny},
				{ActionDeleteRepositoryTag, repoNginx, Deny},
				{"CR:PUSHREPOSITORY", repoNginx, Deny},
				{ActionPullRepository, repoNginx, Allow},
				{ActionPushRepository, repoOther, Allow},
				{ActionDeleteNamespace, nsJuzhong, Allow},
			})
		})
	}
	// A Deny alone is still a Deny, not merely an implicit one.
	runChecks(t, Compile(deny), []check{
		{ActionPushRepository, repoNginx, Deny},
		{ActionPullRepository, repoNginx, ImplicitDeny},
	})
}

func TestDefaultDeny(t *testing.T) {
	var nilSet *Set
	for _, set := range []*Set{nilSet, {}, Compile(), Compile(nil, nil)} {
		if got := set.Evaluate(Request{Action: ActionPullRepository, Resource: AnyResource}); got != ImplicitDeny {
			t.Errorf("empty set: %v", got)
		}
		if set.Allowed("*", "*") {
			t.Error("empty set allowed")
		}
	}
	// A statement with an effect Parse would refuse never allows.
	odd := &Document{Version: "1", Statement: []Statement{{Effect: "allow", Action: []string{"*"}, Resource: []string{"*"}}}}
	if Compile(odd).Allowed(ActionPullRepository, repoNginx) {
		t.Error("unknown effect allowed")
	}
}

func TestActionCaseInsensitiveResourceCaseSensitive(t *testing.T) {
	set := Compile(mustParse(t, `{"Version":"1","Statement":[{"Effect":"Allow",
		"Action":["cr:pullrepository","CR:GET*"],"Resource":"acs:cr:*:*:repository/juzhong/*"}]}`))
	runChecks(t, set, []check{
		{"cr:PullRepository", repoNginx, Allow},
		{"cr:pullrepository", repoNginx, Allow},
		{"CR:PULLREPOSITORY", repoNginx, Allow},
		{"cr:GetRepository", repoNginx, Allow},
		{"cr:getrepository", repoNginx, Allow},
		{"cr:PushRepository", repoNginx, ImplicitDeny},
		{"cr:PullRepository", strings.Replace(repoNginx, "juzhong", "JUZHONG", 1), ImplicitDeny},
		{"cr:PullRepository", strings.Replace(repoNginx, "nginx", "Nginx", 1), Allow}, // "*" matches any case
	})
}

func TestWildcards(t *testing.T) {
	set := Compile(mustParse(t, `{"Version":"1","Statement":[
		{"Effect":"Allow","Action":"cr:*Repository","Resource":"acs:cr:cn-*:*:repository/team-?/*"},
		{"Effect":"Allow","Action":"cr:*Trigger*","Resource":"acs:cr:*:*:repository/*"}]}`))
	runChecks(t, set, []check{
		{ActionPullRepository, RepositoryResource(hz, acct, "team-a", "app"), Allow},
		{ActionPullRepository, RepositoryResource("us-west-1", acct, "team-a", "app"), ImplicitDeny},
		{ActionPullRepository, RepositoryResource(hz, acct, "team-ab", "app"), ImplicitDeny},
		{ActionListRepositoryTag, RepositoryResource(hz, acct, "team-a", "app"), ImplicitDeny},
		// "repository/*" covers namespaces and the repositories in them.
		{ActionListTriggerRecord, repoNginx, Allow},
		{ActionCreateTrigger, nsJuzhong, Allow},
		{ActionCreateTrigger, AnyResource, ImplicitDeny},
	})
}

func TestDecisionString(t *testing.T) {
	for d, want := range map[Decision]string{Allow: "Allow", Deny: "Deny", ImplicitDeny: "ImplicitDeny"} {
		if d.String() != want {
			t.Errorf("%d.String() = %s", d, d.String())
		}
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	set := Compile(benchDoc(t))
	req := Request{Action: ActionPushRepository, Resource: repoNginx}
	if n := testing.AllocsPerRun(100, func() { set.Evaluate(req) }); n != 0 {
		t.Errorf("Evaluate allocates %v times", n)
	}
}

// benchDoc is a realistic 10-statement policy with wildcards everywhere.
func benchDoc(t testing.TB) *Document {
	return mustParse(t, `{"Version":"1","Statement":[
		{"Effect":"Deny","Action":["cr:Delete*"],"Resource":["acs:cr:*:*:repository/prod/*"]},
		{"Effect":"Deny","Action":["cr:Update*Security*"],"Resource":["acs:cr:*:*:repository/*"]},
		{"Effect":"Allow","Action":["cr:Get*","cr:List*","cr:PullRepository"],"Resource":["acs:cr:*:*:repository/juzhong/*"]},
		{"Effect":"Allow","Action":["cr:ListNamespace","cr:ListRepository"],"Resource":"*"},
		{"Effect":"Allow","Action":"cr:*","Resource":["acs:cr:cn-hangzhou:*:repository/team-?/*","acs:cr:cn-hangzhou:*:repository/team-?"]},
		{"Effect":"Allow","Action":["cr:*Build*"],"Resource":["acs:cr:*:*:repository/ci-*/*"]},
		{"Effect":"Allow","Action":["cr:*Trigger*"],"Resource":["acs:cr:*:*:repository/ops/*"]},
		{"Effect":"Allow","Action":["cr:Get*"],"Resource":["acs:cr:*:*:repository/*"]},
		{"Effect":"Allow","Action":["cr:PushRepository","cr:PullRepository"],"Resource":["acs:cr:cn-*:1234567890:repository/dev-*/*"]},
		{"Effect":"Allow","Action":"cr:*","Resource":["acs:cr:*:*:repository/juzhong/nginx"]}]}`)
}

func BenchmarkEvaluate10Statements(b *testing.B) {
	set := Compile(benchDoc(b))
	reqs := []Request{
		{ActionPushRepository, repoNginx},                                        // allowed by the last statement
		{ActionPullRepository, repoOther},                                        // implicit deny after every statement
		{ActionDeleteRepositoryTag, RepositoryResource(hz, acct, "prod", "api")}, // explicit deny
		{"cr:pullrepository", RepositoryResource(sh, acct, "dev-x", "web")},      // case-folded wildcard match
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		set.Evaluate(reqs[i%len(reqs)])
	}
}
