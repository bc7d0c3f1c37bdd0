package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/store"
)

// TestQueriesUseIndexes: every query that a page, an API call, a push or a sweeper makes is answered from an
// index, never by scanning a table or sorting it (SQLite's own query plans say so). A query added without its
// index belongs in this list and fails here.
var smallTables = map[string]bool{"users": true, "policies": true, "namespaces": true, "gc_runs": true, "repositories": true,
	"retention_rules": true}

func TestQueriesUseIndexes(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var queries []string
	for _, l := range []struct {
		t     *table
		where string
		o     order
	}{
		{tTags, "repository = ?", byPush},
		{tBuilds, "repository = ?", byIDDesc},
		{tTriggerRecords, "trigger_id = ?", byIDDesc},
		{tRepositories, "namespace = ?", byID},
		{tRepositories, "account_id = ?", byID},
		{tRepositories, "namespace = ? AND account_id = ?", byID},
		{tRepositories, "", byID},
		{tNamespaces, "account_id = ?", byID},
		{tNamespaces, "", byID},
		{tTriggers, "repository = ?", byCreated},
		{tBuildRules, "repository = ?", byCreated},
		{tAccessKeys, "user = ?", byCreated},
		{tUsers, "", byID},
		{tPolicies, "", byID},
		{tGCRuns, "", byIDDesc},
		{tRetentionRuns, "namespace = ?", byIDDesc},
		{tCodeAccounts, "account_id = ?", byCreated},
	} {
		queries = append(queries, pageSQL(l.t, l.where, l.o.fwd), pageSQL(l.t, l.where, l.o.rev))
	}
	queries = append(queries,
		"SELECT doc FROM tags WHERE id = ?",
		"SELECT id FROM sources WHERE code_account = ? ORDER BY id LIMIT ?",
		"SELECT count(*) FROM code_accounts WHERE account_id = ?",
		"SELECT n FROM counters WHERE key = ?",
		"SELECT repository FROM tags WHERE repository = ? AND digest = ?",
		"SELECT doc FROM tags WHERE repository = ? AND digest = ? LIMIT ?",
		"SELECT doc FROM tags WHERE pushed_at >= ? ORDER BY pushed_at DESC LIMIT ?",
		"SELECT doc FROM scans WHERE id IN (?, ?, ?)",
		"SELECT doc FROM scans WHERE pending = 1 LIMIT ?",
		"SELECT doc FROM builds WHERE status = ? AND id > ? ORDER BY id LIMIT ?",
		"SELECT doc FROM builds WHERE status = ? AND queue_error = 1 ORDER BY id LIMIT ?",
		"SELECT 1 FROM build_deliveries WHERE repository = ? AND key = ? LIMIT 1",
		"SELECT doc FROM sources WHERE hook_id = ?",
		"SELECT doc FROM triggers WHERE repository = ? AND enabled = 1 ORDER BY created_at, id",
		"SELECT doc FROM build_rules WHERE repository = ? "+rulesOrder+" LIMIT ?",
		"SELECT trigger_id FROM trigger_records WHERE time < ?",
		"SELECT trigger_id FROM trigger_records WHERE trigger_id = ?",
		"SELECT trigger_id FROM trigger_records WHERE repository = ?",
		"SELECT repository FROM builds WHERE repository = ?",
		"SELECT count(*) FROM hook_deliveries WHERE at < ?",
		"SELECT count(*) FROM hook_deliveries WHERE repository = ?",
		"SELECT count(*) FROM console_sessions WHERE seen_at < ? OR created_at < ?",
		"SELECT count(*) FROM namespaces WHERE account_id = ?",
		"SELECT count(*) FROM build_rules WHERE repository = ?",
		"SELECT count(*) FROM access_keys WHERE user = ?",
		"SELECT id FROM repositories WHERE namespace = ? ORDER BY id",
		"SELECT doc FROM gc_runs WHERE finished = 0 AND id != ?",
		"SELECT count(*) FROM build_logs WHERE repository = ?",
		"DELETE FROM build_deliveries WHERE build = ?",
		"SELECT id FROM retention_rules WHERE rules > 0 ORDER BY id",
		"SELECT doc FROM retention_runs WHERE finished = 0 AND id != ?",
		"SELECT namespace FROM retention_runs WHERE namespace = ?",
		"DELETE FROM audit_log WHERE "+auditSweepWhere,
	)
	// The audit log's filters, alone and combined: a page and its capped total.
	for _, f := range []store.AuditFilter{{}, {User: "u"}, {Action: "a"}, {Resource: "r"}, {User: "u", Action: "a"},
		{Action: "a", Resource: "r"}, {User: "u", Action: "a", Resource: "r"}, {Since: time.Now(), Until: time.Now()},
		{User: "u", Since: time.Now()}} {
		where, _ := auditWhere(f)
		queries = append(queries, pageSQL(tAuditLog, where, "id DESC"), auditCountSQL(where))
	}
	for _, q := range queries {
		args := make([]any, strings.Count(q, "?"))
		rows, err := db.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			// A SCAN reads a whole table or index: only lists of a whole small table may (pages of users,
			// policies, namespaces, GC runs, and of every repository, at most SPEC's 10,000, through the id index).
			// A SCAN of a subquery reads the rows the subquery's own (checked) step found, at most its LIMIT.
			scan := strings.HasPrefix(step, "SCAN ") && !strings.HasPrefix(step, "SCAN (subquery-") &&
				!(strings.Contains(step, " USING ") && smallTables[strings.Fields(step)[1]])
			if scan || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("%s\n  is not served by an index: %s", q, strings.Join(plan, "; "))
				break
			}
		}
	}
}
