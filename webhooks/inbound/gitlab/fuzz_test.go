package gitlab

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
		f.Add(EventPush, b)
		f.Add(EventTagPush, b)
		f.Add(EventSystem, b)
	}
	f.Add(EventPush, []byte(`{"object_kind":"push","ref":"refs/heads/x","checkout_sha":null}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		h := headers(event)
		ev, err := Parse(h, body)
		if err != nil {
			if ev != nil {
				t.Fatal("event and error both returned")
			}
			return
		}
		if ev.RefType != hook.RefTypeBranch && ev.RefType != hook.RefTypeTag || ev.Name == "" || ev.DeliveryID == "" {
			t.Fatalf("incomplete event %+v", ev)
		}
		if ev.Deleted != (ev.Commit == "") {
			t.Fatalf("deleted=%v with commit %q", ev.Deleted, ev.Commit)
		}
	})
}
