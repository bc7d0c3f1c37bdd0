package apptest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Response is a decoded API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Code is the error code of an error answer.
func (r *Response) Code() string { s, _ := r.JSON["code"].(string); return s }

// Items is the items list of a list answer.
func (r *Response) Items() []map[string]any {
	raw, _ := r.JSON["items"].([]any)
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i], _ = v.(map[string]any)
	}
	return out
}

// Call sends an API request as user:pass ("" user = anonymous). body may be nil, a string (sent as is) or a
// value marshalled to JSON.
func (in *Instance) Call(t testing.TB, user, pass, method, path string, body any) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, in.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return Do(t, req)
}

// Do sends req as it is and decodes the answer.
func Do(t testing.TB, req *http.Request) *Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
	_ = json.Unmarshal(data, &r.JSON)
	return r
}

// Admin sends an API request as the administrator.
func (in *Instance) Admin(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	return in.Call(t, "admin", AdminPassword, method, path, body)
}

// MustAdmin sends an API request as the administrator and fails the test unless it succeeds (2xx).
func (in *Instance) MustAdmin(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	r := in.Admin(t, method, path, body)
	if r.Status < 200 || r.Status >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
	}
	return r
}
