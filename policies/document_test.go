package policies

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Statement
	}{
		{
			name: "spec example, scalar action and list resource",
			doc:  `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepository","Resource":["acs:cr:*:*:repository/juzhong/*"]}]}`,
			want: []Statement{{Effect: EffectAllow, Action: []string{"cr:PullRepository"}, Resource: []string{"acs:cr:*:*:repository/juzhong/*"}}},
		},
		{
			name: "list action, star resource, whitespace",
			doc: `{ "Version": "1",
			  "Statement": [ { "Effect": "Deny", "Action": ["cr:Get*", "cr:List*"], "Resource": "*" } ] }`,
			want: []Statement{{Effect: EffectDeny, Action: []string{"cr:Get*", "cr:List*"}, Resource: []string{"*"}}},
		},
		{
			name: "administrator star action",
			doc:  `{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`,
			want: []Statement{{Effect: EffectAllow, Action: []string{"*"}, Resource: []string{"*"}}},
		},
		{
			name: "action case does not matter, namespace and repository resources, '?' wildcard",
			doc: `{"Version":"1","Statement":[{"Effect":"Allow","Action":["CR:pullrepository","cr:*"],
			  "Resource":["acs:cr:cn-hangzhou:123:repository/juzhong","acs:cr:cn-*:1?3:repository/ju?hong/ng*x"]}]}`,
			want: []Statement{{Effect: EffectAllow, Action: []string{"CR:pullrepository", "cr:*"},
				Resource: []string{"acs:cr:cn-hangzhou:123:repository/juzhong", "acs:cr:cn-*:1?3:repository/ju?hong/ng*x"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if doc.Version != "1" || len(doc.Statement) != len(tt.want) {
				t.Fatalf("got %+v", doc)
			}
			for i, st := range doc.Statement {
				w := tt.want[i]
				if st.Effect != w.Effect || fmt.Sprint(st.Action) != fmt.Sprint(w.Action) || fmt.Sprint(st.Resource) != fmt.Sprint(w.Resource) {
					t.Errorf("statement %d = %+v, want %+v", i, st, w)
				}
			}
		})
	}
}

// A parsed document marshals back to the same JSON, a bare string staying a
// string and a list staying a list.
func TestMarshalRoundTrip(t *testing.T) {
	docs := []string{
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepository","Resource":["acs:cr:*:*:repository/juzhong/*"]}]}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":["cr:Get*","cr:List*"],"Resource":"*"},{"Effect":"Deny","Action":["cr:PushRepository"],"Resource":["*"]}]}`,
	}
	for _, in := range docs {
		doc, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%s): %v", in, err)
		}
		out, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != in {
			t.Errorf("round trip:\n got %s\nwant %s", out, in)
		}
		// And decoding through encoding/json gives the same document.
		var again Document
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatal(err)
		}
		out2, _ := json.Marshal(&again)
		if string(out2) != in {
			t.Errorf("second round trip: got %s", out2)
		}
	}
	// A document built in code marshals its fields as lists.
	out, err := json.Marshal(allowDoc([]string{"cr:*"}, []string{"*"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Version":"1","Statement":[{"Effect":"Allow","Action":["cr:*"],"Resource":["*"]}]}`; string(out) != want {
		t.Errorf("got %s, want %s", out, want)
	}
}

// encoding/json decoding validates, so a request body embedding a document
// cannot carry an invalid one.
func TestUnmarshalValidates(t *testing.T) {
	var body struct {
		Name     string    `json:"name"`
		Document *Document `json:"document"`
	}
	err := json.Unmarshal([]byte(`{"name":"x","document":{"Version":"2","Statement":[]}}`), &body)
	if !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("err = %v, want ErrInvalidPolicy", err)
	}
	err = json.Unmarshal([]byte(`{"name":"x","document":{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:*","Resource":"*"}]}}`), &body)
	if err != nil || body.Document == nil || len(body.Document.Statement) != 1 {
		t.Fatalf("err = %v, doc = %+v", err, body.Document)
	}
}

func TestParseErrors(t *testing.T) {
	stmt := func(s string) string { return `{"Version":"1","Statement":[` + s + `]}` }
	allow := func(action, resource string) string {
		return stmt(`{"Effect":"Allow","Action":` + action + `,"Resource":` + resource + `}`)
	}
	many := func(n int, v string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(v+",", n), ",") + "]"
	}
	tests := []struct {
		name      string
		doc       string
		statement int
		field     string
		msg       string // substring of the message
	}{
		{"not JSON", `{"Version":`, -1, "", "not valid JSON"},
		{"not an object", `[1,2]`, -1, "", "must be a JSON object"},
		{"null", `null`, -1, "", "must be a JSON object"},
		{"missing version", `{"Statement":[]}`, -1, "Version", "missing"},
		{"unknown version", `{"Version":"2","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, -1, "Version", `unknown version "2"`},
		{"numeric version", `{"Version":1,"Statement":[]}`, -1, "Version", `must be the string "1"`},
		{"lower-case key", `{"version":"1","Statement":[]}`, -1, "version", "case-sensitive"},
		{"unknown document key", `{"Version":"1","Statement":[],"Id":"x"}`, -1, "Id", "unknown field"},
		{"missing statement", `{"Version":"1"}`, -1, "Statement", "missing"},
		{"statement not a list", `{"Version":"1","Statement":{}}`, -1, "Statement", "must be a list"},
		{"no statements", `{"Version":"1","Statement":[]}`, -1, "Statement", "at least one statement"},
		{"too many statements", stmt(strings.TrimSuffix(strings.Repeat(`{"Effect":"Allow","Action":"*","Resource":"*"},`, MaxStatements+1), ",")), -1, "Statement", "limit is 64"},
		{"statement not an object", stmt(`"x"`), 0, "", "must be a JSON object"},
		{"unknown statement key", stmt(`{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}`), 0, "Condition", "unknown field"},
		{"NotAction refused", stmt(`{"Effect":"Allow","NotAction":"*","Resource":"*"}`), 0, "NotAction", "unknown field"},
		{"missing effect", stmt(`{"Action":"*","Resource":"*"}`), 0, "Effect", "missing"},
		{"unknown effect", stmt(`{"Effect":"allow","Action":"*","Resource":"*"}`), 0, "Effect", `unknown effect "allow"`},
		{"effect not a string", stmt(`{"Effect":true,"Action":"*","Resource":"*"}`), 0, "Effect", "must be the string"},
		{"missing action", stmt(`{"Effect":"Allow","Resource":"*"}`), 0, "Action", "missing"},
		{"empty action list", allow(`[]`, `"*"`), 0, "Action", "empty"},
		{"empty action string", allow(`""`, `"*"`), 0, "Action", "empty string"},
		{"action not string", allow(`5`, `"*"`), 0, "Action", "must be a string or a list"},
		{"action element not string", allow(`["cr:*",5]`, `"*"`), 0, "Action[1]", "must be a string"},
		{"ram action", allow(`"ram:CreateUser"`, `"*"`), 0, "Action", "cannot grant ram:"},
		{"other service", allow(`"ecs:*"`, `"*"`), 0, "Action", `"*" or "cr:<Action>"`},
		{"no service", allow(`"PullRepository"`, `"*"`), 0, "Action", `"*" or "cr:<Action>"`},
		{"star without service", allow(`"*Repository"`, `"*"`), 0, "Action", `"*" or "cr:<Action>"`},
		{"empty cr action", allow(`"cr:"`, `"*"`), 0, "Action", "empty"},
		{"typo action", allow(`["cr:Get*","cr:PullRepositry"]`, `"*"`), 0, "Action[1]", "not a Berth action"},
		{"bad character in action", allow(`"cr:Pull-Repository"`, `"*"`), 0, "Action", "letters"},
		{"too many actions", allow(many(MaxValuesPerField+1, `"cr:*"`), `"*"`), 0, "Action", "limit is 64"},
		{"missing resource", stmt(`{"Effect":"Allow","Action":"*"}`), 0, "Resource", "missing"},
		{"empty resource list", allow(`"*"`, `[]`), 0, "Resource", "empty"},
		{"empty resource string", allow(`"*"`, `["*",""]`), 0, "Resource[1]", "empty string"},
		{"resource wrong service", allow(`"*"`, `"acs:ecs:*:*:repository/x"`), 0, "Resource", "a resource is"},
		{"resource wrong type", allow(`"*"`, `"acs:cr:*:*:instance/x"`), 0, "Resource", "a resource is"},
		{"acs:cr:*:*:* hint", allow(`"*"`, `"acs:cr:*:*:*"`), 0, "Resource", `"acs:cr:*:*:repository/*"`},
		{"resource too many segments", allow(`"*"`, `"acs:cr:*:*:repository/a/b/c"`), 0, "Resource", "too many path segments"},
		{"resource empty namespace", allow(`"*"`, `"acs:cr:*:*:repository/"`), 0, "Resource", "namespace part is empty"},
		{"resource empty repository", allow(`"*"`, `"acs:cr:*:*:repository/ns/"`), 0, "Resource", "repository part is empty"},
		{"resource empty region", allow(`"*"`, `"acs:cr::1:repository/ns"`), 0, "Resource", "region part is empty"},
		{"resource upper-case namespace", allow(`"*"`, `"acs:cr:*:*:repository/Juzhong/*"`), 0, "Resource", "lower case"},
		{"resource bad character", allow(`"*"`, `"acs:cr:*:*:repository/ju zhong"`), 0, "Resource", "may hold only"},
		{"resource too long", allow(`"*"`, `"acs:cr:*:*:repository/`+strings.Repeat("a", MaxStringLength)+`"`), 0, "Resource", "limit is 512"},
		{"too many resources", allow(`"*"`, many(MaxValuesPerField+1, `"*"`)), 0, "Resource", "limit is 64"},
		{"error in second statement", stmt(`{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"cr:*","Resource":"acs:cr"}`), 1, "Resource", "a resource is"},
		{"document too large", allow(`"*"`, many(60, `"acs:cr:*:*:repository/`+strings.Repeat("a", 80)+`"`)), -1, "", "limit is 6144"},
		{"raw input huge", `{"Version":"1"` + strings.Repeat(" ", maxRawSize) + `}`, -1, "", "limit is 6144"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", doc)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("error %v does not wrap ErrInvalidPolicy", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError", err)
			}
			if ve.Statement != tt.statement || ve.Field != tt.field || !strings.Contains(ve.Message, tt.msg) {
				t.Errorf("got {Statement:%d Field:%q Message:%q}, want {%d %q ...%q...}", ve.Statement, ve.Field, ve.Message, tt.statement, tt.field, tt.msg)
			}
		})
	}
}

func TestValidationErrorText(t *testing.T) {
	tests := []struct {
		err  *ValidationError
		want string
	}{
		{invalid(2, "Action[1]", "bad"), "invalid policy document: Statement[2].Action[1]: bad"},
		{invalid(-1, "Version", "bad"), "invalid policy document: Version: bad"},
		{invalid(-1, "", "bad"), "invalid policy document: bad"},
		{invalid(0, "", "bad"), "invalid policy document: Statement[0]: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// Documents built in code are validated by Validate, with the same errors.
func TestValidateBuiltDocument(t *testing.T) {
	if err := (*Document)(nil).Validate(); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("nil document: %v", err)
	}
	d := allowDoc([]string{"cr:*"}, []string{"*"})
	d.Statement = append(d.Statement, Statement{Effect: "Maybe", Action: []string{"*"}, Resource: []string{"*"}})
	var ve *ValidationError
	if err := d.Validate(); !errors.As(err, &ve) || ve.Statement != 1 || ve.Field != "Effect" {
		t.Errorf("got %v", err)
	}
	for _, p := range SystemPolicies() {
		if err := p.Document.Validate(); err != nil {
			t.Errorf("system policy %s: %v", p.Name, err)
		}
	}
}

// Every cr action is accepted by name, in any letter case.
func TestParseAcceptsEveryCRAction(t *testing.T) {
	for _, a := range AllActions {
		if !strings.HasPrefix(a, "cr:") {
			continue
		}
		for _, spelled := range []string{a, strings.ToLower(a), strings.ToUpper(a)} {
			doc := fmt.Sprintf(`{"Version":"1","Statement":[{"Effect":"Allow","Action":%q,"Resource":"*"}]}`, spelled)
			if _, err := Parse([]byte(doc)); err != nil {
				t.Errorf("%s: %v", spelled, err)
			}
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"juzhong-pull", "A", strings.Repeat("a", MaxPolicyNameLength)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "has space", "a/b", strings.Repeat("a", MaxPolicyNameLength+1), "AdministratorAccess", "aliyuncontainerregistryfullaccess"} {
		if err := ValidateName(bad); !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidPolicy", bad, err)
		}
	}
}
