package github

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/webhooks/inbound/hook"
)

func FuzzParse(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("fixtures", "*.json"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("push", "application/json", b)
	}
	f.Add("push", "application/x-www-form-urlencoded", []byte("payload=%7B%22ref%22%3A%22refs%2Fheads%2Fx%22%7D"))
	f.Add("push", "application/json", []byte(`{"ref":"refs/tags/v1","after":"0000","head_commit":{"id":null}}`))
	f.Fuzz(func(t *testing.T, event, contentType string, body []byte) {
		h := headers(event, "")
		h.Set("Content-Type", contentType)
		ev, err := Parse(h, body)
		checkEvent(t, ev, err)
		_ = Verify(h, body, "secret")
	})
}

func checkEvent(t *testing.T, ev *hook.PushEvent, err error) {
	t.Helper()
	if err != nil {
		if ev != nil {
			t.Fatal("event and error both returned")
		}
		return
	}
	if ev.RefType != hook.RefTypeBranch && ev.RefType != hook.RefTypeTag {
		t.Fatalf("ref type %q", ev.RefType)
	}
	if ev.Name == "" || ev.DeliveryID == "" || ev.Provider != Provider {
		t.Fatalf("incomplete event %+v", ev)
	}
	if ev.Deleted != (ev.Commit == "") {
		t.Fatalf("deleted=%v with commit %q", ev.Deleted, ev.Commit)
	}
}
