package bitbucket

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("fixtures", "*.json"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(EventRepoPush, b)
	}
	f.Add(EventRepoPush, []byte(`{"push":{"changes":[{"old":null,"new":null}]}}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		h := headers(event)
		evs, err := ParseAll(h, body)
		if err != nil {
			if evs != nil {
				t.Fatal("events and error both returned")
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("no events and no error")
		}
		for _, ev := range evs {
			if ev.Name == "" || ev.DeliveryID == "" || ev.Deleted != (ev.Commit == "") {
				t.Fatalf("inconsistent event %+v", ev)
			}
		}
		if _, err := Parse(h, body); err != nil {
			t.Fatalf("ParseAll ok but Parse failed: %v", err)
		}
	})
}
