package generic

import (
	"net/http"
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
		f.Add("", b)
	}
	f.Add("push", []byte(`{"ref":"refs/tags/x","deleted":true}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		h := http.Header{}
		h.Set(HeaderEvent, event)
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
	})
}
