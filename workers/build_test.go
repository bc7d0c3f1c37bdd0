package workers

import (
	"testing"

	"github.com/berth-dev/berth/store"
)

// TestCheckoutKey: a kept checkout is found only by a build of the same commit from the same Berth repository,
// URL and credentials; a build whose commit is not known yet (a tag) keeps none.
func TestCheckoutKey(t *testing.T) {
	commit := "0123456789abcdef0123456789abcdef01234567"
	base := store.Source{Repository: "team/app", URL: "https://git.example.com/app.git", Username: "ci", Password: "sealed-1"}
	k := checkoutKey(&base, commit)
	if k == "" || checkoutKey(&base, commit) != k {
		t.Fatalf("key of a known commit: %q", k)
	}
	if checkoutKey(&base, "") != "" || checkoutKey(&base, "main") != "" {
		t.Fatal("a build without an exact commit got a checkout key")
	}
	for name, change := range map[string]func(*store.Source){
		"another Berth repository": func(s *store.Source) { s.Repository = "other/app" },
		"another URL":              func(s *store.Source) { s.URL = "https://git.example.com/other.git" },
		"another user":             func(s *store.Source) { s.Username = "ci2" },
		"new credentials":          func(s *store.Source) { s.Password = "sealed-2" },
		"an SSH key":               func(s *store.Source) { s.SSHKey = "sealed-key" },
	} {
		s := base
		change(&s)
		if checkoutKey(&s, commit) == k {
			t.Errorf("%s shares the checkout key", name)
		}
	}
	if checkoutKey(&base, "1123456789abcdef0123456789abcdef01234567") == k {
		t.Error("another commit shares the checkout key")
	}
	// Field boundaries count: moving text from one field to the next changes the key.
	a := store.Source{Repository: "team/app", URL: "x", Username: "y"}
	b := store.Source{Repository: "team/app", URL: "xy", Username: ""}
	if checkoutKey(&a, commit) == checkoutKey(&b, commit) {
		t.Error("URL+user boundary is ambiguous")
	}
}
