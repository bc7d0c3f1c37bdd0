package gitea

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
		f.Add("push", "application/json", b)
	}
	f.Add("push", "application/x-www-form-urlencoded", []byte("payload=%7B%7D"))
	f.Fuzz(func(t *testing.T, event, contentType string, body []byte) {
		h := giteaHeaders(event)
		h.Set("Content-Type", contentType)
		ev, err := Parse(h, body)
		if err != nil {
			if ev != nil {
				t.Fatal("event and error both returned")
			}
			return
		}
		if ev.Name == "" || ev.DeliveryID == "" || ev.Deleted != (ev.Commit == "") {
			t.Fatalf("inconsistent event %+v", ev)
		}
		_ = Verify(h, body, "s")
	})
}
