package sqlite

import "github.com/berth-dev/berth/store"

// schema creates every table and index. Each index serves named queries (the comments); a query this package
// makes that no index serves is a bug (TestQueryPlans checks the hot ones).
const schema = `
CREATE TABLE IF NOT EXISTS meta (id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS access_keys (id TEXT PRIMARY KEY, user TEXT NOT NULL, created_at INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS access_keys_user ON access_keys(user, created_at, id);
CREATE TABLE IF NOT EXISTS policies (id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS console_sessions (id TEXT PRIMARY KEY, user TEXT NOT NULL, seen_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_user ON console_sessions(user);
CREATE INDEX IF NOT EXISTS console_sessions_seen ON console_sessions(seen_at);
CREATE INDEX IF NOT EXISTS console_sessions_created ON console_sessions(created_at);

CREATE TABLE IF NOT EXISTS namespaces (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS namespaces_account ON namespaces(account_id, id);
CREATE TABLE IF NOT EXISTS repositories (id TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
	account_id TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS repositories_namespace ON repositories(namespace, id);
CREATE INDEX IF NOT EXISTS repositories_account ON repositories(account_id, id);

-- A repository's versions, newest push first (the versions page, first and last); by digest (a manifest
-- deleted by digest); recent pushes (rescans after a DB update).
CREATE TABLE IF NOT EXISTS tags (id TEXT PRIMARY KEY, repository TEXT NOT NULL, pushed_at INTEGER NOT NULL,
	digest TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS tags_repository ON tags(repository, pushed_at DESC, id);
CREATE INDEX IF NOT EXISTS tags_digest ON tags(repository, digest);
CREATE INDEX IF NOT EXISTS tags_pushed ON tags(pushed_at);

-- Scans by digest (the id); the unfinished ones and those with pushes waiting (the sweeper). The
-- vulnerabilities are kept apart: a versions page reads twenty summaries, not twenty reports.
CREATE TABLE IF NOT EXISTS scans (id TEXT PRIMARY KEY, pending INTEGER NOT NULL, doc BLOB NOT NULL, vulns BLOB);
CREATE INDEX IF NOT EXISTS scans_pending ON scans(pending) WHERE pending = 1;
CREATE TABLE IF NOT EXISTS security_policies (id TEXT PRIMARY KEY, repository TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS security_policies_repository ON security_policies(repository);

CREATE TABLE IF NOT EXISTS sources (id TEXT PRIMARY KEY, hook_id TEXT NOT NULL, code_account TEXT NOT NULL DEFAULT '',
	doc BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS sources_hook ON sources(hook_id);
CREATE TABLE IF NOT EXISTS hook_deliveries (id TEXT PRIMARY KEY, repository TEXT NOT NULL, at INTEGER NOT NULL,
	doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS hook_deliveries_repository ON hook_deliveries(repository);
CREATE INDEX IF NOT EXISTS hook_deliveries_at ON hook_deliveries(at);
CREATE TABLE IF NOT EXISTS build_rules (id TEXT PRIMARY KEY, repository TEXT NOT NULL, created_at INTEGER NOT NULL,
	doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS build_rules_repository ON build_rules(repository, created_at, id);

-- A repository's builds, newest first (ids sort by creation); builds by status (the sweepers); the webhook
-- deliveries a build was made for.
CREATE TABLE IF NOT EXISTS builds (id TEXT PRIMARY KEY, repository TEXT NOT NULL, status TEXT NOT NULL,
	queue_error INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS builds_repository ON builds(repository, id);
CREATE INDEX IF NOT EXISTS builds_status ON builds(status, id);
CREATE TABLE IF NOT EXISTS build_deliveries (repository TEXT NOT NULL, key TEXT NOT NULL, build TEXT NOT NULL,
	PRIMARY KEY (repository, key, build)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS build_deliveries_build ON build_deliveries(build);
CREATE TABLE IF NOT EXISTS build_logs (id TEXT PRIMARY KEY, repository TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS build_logs_repository ON build_logs(repository);

-- A repository's triggers in creation order; a trigger's records, newest first; records by repository (its
-- deletion) and by time (the retention sweep).
CREATE TABLE IF NOT EXISTS triggers (id TEXT PRIMARY KEY, repository TEXT NOT NULL, created_at INTEGER NOT NULL,
	enabled INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS triggers_repository ON triggers(repository, created_at, id);
CREATE TABLE IF NOT EXISTS trigger_records (id TEXT PRIMARY KEY, trigger_id TEXT NOT NULL, repository TEXT NOT NULL,
	time INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS trigger_records_trigger ON trigger_records(trigger_id, id);
CREATE INDEX IF NOT EXISTS trigger_records_repository ON trigger_records(repository);
CREATE INDEX IF NOT EXISTS trigger_records_time ON trigger_records(time);

-- The audit log, newest first: ids sort by time, the table is clustered by id (appends at its end; since/until
-- and the retention sweep are id ranges), and user, action and resource each have an index ordered by id that
-- also holds the other two, so that a combined filter is checked in the index, never in the table.
CREATE TABLE IF NOT EXISTS audit_log (id TEXT PRIMARY KEY, user TEXT NOT NULL, action TEXT NOT NULL,
	resource TEXT NOT NULL, doc BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_log_user ON audit_log(user, id, action, resource);
CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log(action, id, user, resource);
CREATE INDEX IF NOT EXISTS audit_log_resource ON audit_log(resource, id, user, action);

-- Code accounts of a main account in creation order.
CREATE TABLE IF NOT EXISTS code_accounts (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, created_at INTEGER NOT NULL,
	doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS code_accounts_account ON code_accounts(account_id, created_at, id);

CREATE TABLE IF NOT EXISTS gc_runs (id TEXT PRIMARY KEY, finished INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS gc_runs_unfinished ON gc_runs(finished) WHERE finished = 0;

-- A namespace's retention rules (one row, the id is the namespace; rules counts them, for the schedule); its
-- runs, newest first (ids sort by start), and those unfinished.
CREATE TABLE IF NOT EXISTS retention_rules (id TEXT PRIMARY KEY, rules INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS retention_runs (id TEXT PRIMARY KEY, namespace TEXT NOT NULL, finished INTEGER NOT NULL,
	doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS retention_runs_namespace ON retention_runs(namespace, id);
CREATE INDEX IF NOT EXISTS retention_runs_unfinished ON retention_runs(finished) WHERE finished = 0;
`

// upgrades are the columns later versions added to a table an older store has without them (CREATE TABLE IF NOT
// EXISTS leaves that table as it was), then the statements that need them.
var upgrades = []struct{ table, column, definition, then string }{
	// The sources of a code account (deleting one that is in use is refused).
	{"sources", "code_account", "TEXT NOT NULL DEFAULT ''",
		"CREATE INDEX IF NOT EXISTS sources_code_account ON sources(code_account, id)"},
}

func doc[T any]() func() any { return func() any { return new(T) } }

// Each table's descriptor: how a document gives its id and columns.
var (
	tMeta = &table{name: "meta", newDoc: doc[store.Instance](),
		values: func(d any) (string, []any) { return d.(*store.Instance).ID, nil }}
	tUsers = &table{name: "users", newDoc: doc[store.User](),
		values: func(d any) (string, []any) { return d.(*store.User).Name, nil }}
	tAccessKeys = &table{name: "access_keys", cols: []string{"user", "created_at"}, newDoc: doc[store.AccessKey](),
		values: func(d any) (string, []any) {
			k := d.(*store.AccessKey)
			return k.ID, []any{k.User, ms(k.CreatedAt)}
		}}
	tPolicies = &table{name: "policies", newDoc: doc[store.Policy](),
		values: func(d any) (string, []any) { return d.(*store.Policy).Name, nil }}
	tKeys = &table{name: "keys", newDoc: doc[store.InstanceKey](),
		values: func(d any) (string, []any) { return d.(*store.InstanceKey).ID, nil }}
	tSessions = &table{name: "console_sessions", cols: []string{"user", "seen_at", "created_at"}, newDoc: doc[store.Session](),
		values: func(d any) (string, []any) {
			s := d.(*store.Session)
			return s.ID, []any{s.User, ms(s.SeenAt), ms(s.CreatedAt)}
		}}
	tNamespaces = &table{name: "namespaces", cols: []string{"account_id"}, newDoc: doc[store.Namespace](),
		values: func(d any) (string, []any) {
			n := d.(*store.Namespace)
			return n.Name, []any{n.AccountID}
		}}
	tRepositories = &table{name: "repositories", cols: []string{"namespace", "name", "account_id"}, newDoc: doc[store.Repository](),
		values: func(d any) (string, []any) {
			r := d.(*store.Repository)
			return r.FullName, []any{r.Namespace, r.Name, r.AccountID}
		}}
	tTags = &table{name: "tags", cols: []string{"repository", "pushed_at", "digest"}, countBy: "repository",
		newDoc: doc[store.ImageVersion](),
		values: func(d any) (string, []any) {
			v := d.(*store.ImageVersion)
			return v.ID, []any{v.Repository, ms(v.PushedAt), v.Digest}
		}}
	tSecurityPolicies = &table{name: "security_policies", cols: []string{"repository"}, newDoc: doc[store.SecurityPolicy](),
		values: func(d any) (string, []any) {
			p := d.(*store.SecurityPolicy)
			return p.ID, []any{p.Repository}
		}}
	tSources = &table{name: "sources", cols: []string{"hook_id", "code_account"}, newDoc: doc[store.Source](),
		values: func(d any) (string, []any) {
			s := d.(*store.Source)
			return s.ID, []any{s.HookID, s.CodeAccount}
		}}
	tCodeAccounts = &table{name: "code_accounts", cols: []string{"account_id", "created_at"}, newDoc: doc[store.CodeAccount](),
		values: func(d any) (string, []any) {
			a := d.(*store.CodeAccount)
			return a.ID, []any{a.AccountID, ms(a.CreatedAt)}
		}}
	tHookDeliveries = &table{name: "hook_deliveries", cols: []string{"repository", "at"}, newDoc: doc[hookDelivery](),
		values: func(d any) (string, []any) {
			h := d.(*hookDelivery)
			return h.ID, []any{h.Repository, ms(h.At)}
		}}
	tBuildRules = &table{name: "build_rules", cols: []string{"repository", "created_at"}, newDoc: doc[store.BuildRule](),
		values: func(d any) (string, []any) {
			r := d.(*store.BuildRule)
			return r.ID, []any{r.Repository, ms(r.CreatedAt)}
		}}
	tBuilds = &table{name: "builds", cols: []string{"repository", "status", "queue_error"}, countBy: "repository",
		newDoc: doc[store.Build](),
		values: func(d any) (string, []any) {
			b := d.(*store.Build)
			return b.ID, []any{b.Repository, b.Status, boolInt(b.QueueError != "")}
		}}
	tBuildLogs = &table{name: "build_logs", cols: []string{"repository"}, newDoc: doc[store.LogChunk](),
		values: func(d any) (string, []any) {
			c := d.(*store.LogChunk)
			return c.ID, []any{c.Repository}
		}}
	tTriggers = &table{name: "triggers", cols: []string{"repository", "created_at", "enabled"}, newDoc: doc[store.Trigger](),
		values: func(d any) (string, []any) {
			t := d.(*store.Trigger)
			return t.ID, []any{t.Repository, ms(t.CreatedAt), boolInt(t.Enabled)}
		}}
	tTriggerRecords = &table{name: "trigger_records", cols: []string{"trigger_id", "repository", "time"}, countBy: "trigger_id",
		newDoc: doc[store.TriggerRecord](),
		values: func(d any) (string, []any) {
			r := d.(*store.TriggerRecord)
			return r.ID, []any{r.TriggerID, r.Repository, ms(r.Time)}
		}}
	tAuditLog = &table{name: "audit_log", cols: []string{"user", "action", "resource"}, newDoc: doc[store.AuditEntry](),
		values: func(d any) (string, []any) {
			e := d.(*store.AuditEntry)
			return e.ID, []any{e.User, e.Action, e.Resource}
		}}
	tGCRuns = &table{name: "gc_runs", cols: []string{"finished"}, newDoc: doc[store.GCRun](),
		values: func(d any) (string, []any) {
			r := d.(*store.GCRun)
			return r.ID, []any{boolInt(r.FinishedAt != nil)}
		}}
	tRetentionRules = &table{name: "retention_rules", cols: []string{"rules"}, newDoc: doc[store.RetentionRuleSet](),
		values: func(d any) (string, []any) {
			r := d.(*store.RetentionRuleSet)
			return r.Namespace, []any{len(r.Rules)}
		}}
	tRetentionRuns = &table{name: "retention_runs", cols: []string{"namespace", "finished"}, countBy: "namespace",
		newDoc: doc[store.RetentionRun](),
		values: func(d any) (string, []any) {
			r := d.(*store.RetentionRun)
			return r.ID, []any{r.Namespace, boolInt(r.FinishedAt != nil)}
		}}
)

// repoOwned are the tables whose rows go with their repository.
var repoOwned = []*table{tTags, tTriggers, tTriggerRecords, tHookDeliveries, tBuildRules, tBuilds, tBuildLogs,
	tSecurityPolicies}
