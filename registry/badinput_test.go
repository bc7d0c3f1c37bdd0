package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry/reference"
	"github.com/berth-dev/berth/registry/storage"
	"github.com/berth-dev/berth/registry/storage/driver/filesystem"
)

// Every case asserts the OCI error and that the storage is unchanged.

func TestBadInputDigests(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	body := []byte("some blob content")
	other := sha256Digest([]byte("other content"))
	sum512 := sha512.Sum512(body)
	sha512Hex := hex.EncodeToString(sum512[:])
	sha256Hex := strings.TrimPrefix(sha256Digest(body), "sha256:")
	cases := []struct {
		name, digest, code string
	}{
		{"wrong digest", other, "DIGEST_INVALID"},
		{"sha256 body, sha512 claim of other bytes", "sha512:" + hex.EncodeToString(func() []byte { s := sha512.Sum512([]byte("x")); return s[:] }()), "DIGEST_INVALID"},
		{"sha512 algorithm with a sha256-length hex", "sha512:" + sha256Hex, "DIGEST_INVALID"},
		{"sha256 algorithm with a sha512-length hex", "sha256:" + sha512Hex, "DIGEST_INVALID"},
		{"traversal digest", "sha256:../../etc", "DIGEST_INVALID"},
		{"uppercase hex", "sha256:" + strings.ToUpper(sha256Hex), "DIGEST_INVALID"},
		{"unknown algorithm", "md5:d41d8cd98f00b204e9800998ecf8427e", "DIGEST_INVALID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := "digest=" + urlQueryEscape(c.digest)
			// monolithic POST
			before := snapshot(t, s.root, false)
			resp, b := s.do("POST", "/v2/ns/app/blobs/uploads/?"+q, body, withBearer(tok))
			expect(t, resp, b, 400, c.code)
			sameSnapshot(t, "monolithic POST", before, snapshot(t, s.root, false))
			// POST then PUT
			resp, b = s.do("POST", "/v2/ns/app/blobs/uploads/", nil, withBearer(tok))
			expect(t, resp, b, 202, "")
			loc := resp.Header.Get("Location")
			before = snapshot(t, s.root, true)
			resp, b = s.do("PUT", loc+"?"+q, body, withBearer(tok))
			expect(t, resp, b, 400, c.code)
			sameSnapshot(t, "PUT", before, snapshot(t, s.root, true))
			// nothing under either digest
			for _, d := range []string{sha256Digest(body), "sha512:" + sha512Hex} {
				resp, b = s.do("HEAD", "/v2/ns/app/blobs/"+d, nil, withBearer(tok))
				expect(t, resp, b, 404, "")
			}
		})
	}
	// a correct sha512 digest works
	resp, b := s.do("POST", "/v2/ns/app/blobs/uploads/?digest=sha512:"+sha512Hex, body, withBearer(tok))
	expect(t, resp, b, 201, "")
	resp, b = s.do("GET", "/v2/ns/app/blobs/sha512:"+sha512Hex, nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	if !bytes.Equal(b, body) {
		t.Fatal("sha512 blob content mismatch")
	}
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer(":", "%3A", "/", "%2F").Replace(s)
}

func TestBadInputManifestDigest(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	config := []byte(`{"os":"linux"}`)
	s.pushBlob(tok, "ns/app", config)
	m := imageManifest(config)
	before := snapshot(t, s.root, false)
	for _, ref := range []string{sha256Digest([]byte("not the manifest")), "sha256:baddigeststring", "sha512:" + strings.Repeat("a", 128)} {
		resp, b := s.do("PUT", "/v2/ns/app/manifests/"+ref, m, withBearer(tok), withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json"))
		expect(t, resp, b, 400, "DIGEST_INVALID")
	}
	sameSnapshot(t, "manifest PUT with wrong digest", before, snapshot(t, s.root, false))
}

// rawRequest writes a request by hand and half-closes the connection after
// sending body, so the server sees a body shorter than Content-Length.
func rawRequest(t *testing.T, host, head string, body []byte) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	c.Write(body)
	c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadInputTruncatedUploads(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	body := bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes
	dg := sha256Digest(body)

	t.Run("monolithic POST body shorter than Content-Length", func(t *testing.T) {
		before := snapshot(t, s.root, false)
		head := fmt.Sprintf("POST /v2/ns/app/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n", dg, s.host, tok, len(body))
		status, resp := rawRequest(t, s.host, head, body[:500])
		if status != 400 || errCode([]byte(resp)) != "BLOB_UPLOAD_INVALID" {
			t.Fatalf("got %d %s", status, resp)
		}
		sameSnapshot(t, "truncated POST", before, snapshot(t, s.root, false))
	})

	t.Run("PATCH with Content-Length not matching Content-Range", func(t *testing.T) {
		resp, b := s.do("POST", "/v2/ns/app/blobs/uploads/", nil, withBearer(tok))
		expect(t, resp, b, 202, "")
		loc := resp.Header.Get("Location")
		before := snapshot(t, s.root, false)
		resp, b = s.do("PATCH", loc, body[:500], withBearer(tok), withHeader("Content-Range", "0-999"))
		expect(t, resp, b, 400, "SIZE_INVALID")
		sameSnapshot(t, "PATCH size mismatch", before, snapshot(t, s.root, false))
		resp, b = s.do("GET", loc, nil, withBearer(tok))
		expect(t, resp, b, 204, "")
		if r := resp.Header.Get("Range"); r != "0-0" {
			t.Fatalf("offset moved: Range %q", r)
		}
	})

	t.Run("final PUT body shorter than Content-Length", func(t *testing.T) {
		resp, b := s.do("POST", "/v2/ns/app/blobs/uploads/", nil, withBearer(tok))
		expect(t, resp, b, 202, "")
		loc := resp.Header.Get("Location")
		before := snapshot(t, s.root, true)
		head := fmt.Sprintf("PUT %s?digest=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n", loc, dg, s.host, tok, len(body))
		status, r := rawRequest(t, s.host, head, body[:300])
		if status != 400 || errCode([]byte(r)) != "BLOB_UPLOAD_INVALID" {
			t.Fatalf("got %d %s", status, r)
		}
		sameSnapshot(t, "truncated PUT (blobs, links)", before, snapshot(t, s.root, true))
		resp, b = s.do("HEAD", "/v2/ns/app/blobs/"+dg, nil, withBearer(tok))
		expect(t, resp, b, 404, "")
		// the bytes that arrived stay in the session; the client resumes
		resp, b = s.do("GET", loc, nil, withBearer(tok))
		expect(t, resp, b, 204, "")
		if r := resp.Header.Get("Range"); r != "0-299" {
			t.Fatalf("resume offset: Range %q", r)
		}
		resp, b = s.do("PUT", loc+"?digest="+dg, body[300:], withBearer(tok), withHeader("Content-Range", "300-999"))
		expect(t, resp, b, 201, "")
	})
}

func TestBadInputOutOfOrderChunk(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	body := bytes.Repeat([]byte("abcdefghij"), 300)
	resp, b := s.do("POST", "/v2/ns/app/blobs/uploads/", nil, withBearer(tok))
	expect(t, resp, b, 202, "")
	loc := resp.Header.Get("Location")
	resp, b = s.do("PATCH", loc, body[:1000], withBearer(tok), withHeader("Content-Range", "0-999"))
	expect(t, resp, b, 202, "")
	if resp.Header.Get("Range") != "0-999" {
		t.Fatalf("Range %q", resp.Header.Get("Range"))
	}
	before := snapshot(t, s.root, false)
	for _, cr := range []string{"2000-2999", "0-999", "999-1998", "500-1499"} {
		resp, b = s.do("PATCH", loc, body[1000:2000], withBearer(tok), withHeader("Content-Range", cr))
		expect(t, resp, b, 416, "")
		if resp.Header.Get("Range") != "0-999" || resp.Header.Get("Location") == "" {
			t.Fatalf("416 should tell the offset: Range %q Location %q", resp.Header.Get("Range"), resp.Header.Get("Location"))
		}
	}
	// also as the final PUT chunk
	resp, b = s.do("PUT", loc+"?digest="+sha256Digest(body), body[2000:], withBearer(tok), withHeader("Content-Range", "2000-2999"))
	expect(t, resp, b, 416, "")
	sameSnapshot(t, "out-of-order chunks", before, snapshot(t, s.root, false))
	// in order it completes
	resp, b = s.do("PATCH", loc, body[1000:2000], withBearer(tok), withHeader("Content-Range", "1000-1999"))
	expect(t, resp, b, 202, "")
	resp, b = s.do("PUT", loc+"?digest="+sha256Digest(body), body[2000:], withBearer(tok), withHeader("Content-Range", "2000-2999"))
	expect(t, resp, b, 201, "")
}

func TestBadInputPathTraversal(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push,delete")
	s.pushImage(tok, "ns/app", "v1", "x")
	before := snapshot(t, s.root, false)
	// raw paths, sent as written (no client-side cleaning)
	names := []string{"../x", "a/../../b", "%2e%2e", "%2e%2e/%2e%2e/etc", "ns/..%2f..%2fetc", "ns/%2e%2e", "ns/app/..", "./ns", "ns//app", "NS/app", "ns/app%00", "%2fetc/passwd"}
	for _, n := range names {
		for _, p := range []struct{ method, path string }{
			{"GET", "/v2/" + n + "/manifests/latest"},
			{"PUT", "/v2/" + n + "/manifests/latest"},
			{"GET", "/v2/" + n + "/tags/list"},
			{"POST", "/v2/" + n + "/blobs/uploads/"},
			{"GET", "/v2/" + n + "/blobs/" + sha256Digest([]byte("x"))},
			{"DELETE", "/v2/" + n + "/blobs/" + sha256Digest([]byte("x"))},
		} {
			head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 2\r\nConnection: close\r\n", p.method, p.path, s.host, tok)
			status, body := rawRequest(t, s.host, head, []byte("{}"))
			code := errCode([]byte(body))
			if !(status == 400 && code == "NAME_INVALID") && !(status == 404 && code == "NAME_UNKNOWN") {
				t.Errorf("%s %s: %d %s, want 400 NAME_INVALID (or 404 for an unroutable path)", p.method, p.path, status, body)
			}
		}
	}
	// traversal in digests and tags
	for _, p := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/ns/app/blobs/sha256:..%2f..%2fetc", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/ns/app/blobs/sha256:..", 400, "DIGEST_INVALID"},
		{"GET", "/v2/ns/app/manifests/sha256:..", 400, "DIGEST_INVALID"},
		{"GET", "/v2/ns/app/manifests/..", 400, "MANIFEST_INVALID"},
		{"GET", "/v2/ns/app/manifests/%2e%2e", 400, "MANIFEST_INVALID"},
		{"PUT", "/v2/ns/app/manifests/%2e%2e", 400, "MANIFEST_INVALID"},
		{"GET", "/v2/ns/app/referrers/sha256:..", 400, "DIGEST_INVALID"},
		{"POST", "/v2/ns/app/blobs/uploads/?digest=sha256:../../etc", 400, "DIGEST_INVALID"},
		{"POST", "/v2/ns/app/blobs/uploads/?mount=sha256:../../etc&from=ns/app", 400, "DIGEST_INVALID"},
		{"POST", "/v2/ns/app/blobs/uploads/?mount=" + sha256Digest([]byte("x")) + "&from=../../etc", 202, ""},
		{"GET", "/v2/ns/app/blobs/uploads/..%2f..%2fetc", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/ns/app/blobs/uploads/..", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PATCH", "/v2/ns/app/blobs/uploads/00000000-0000-0000-0000-00000000000%2e", 404, "BLOB_UPLOAD_UNKNOWN"},
	} {
		head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 2\r\nConnection: close\r\n", p.method, p.path, s.host, tok)
		status, body := rawRequest(t, s.host, head, []byte("{}"))
		if status != p.status || errCode([]byte(body)) != p.code {
			t.Errorf("%s %s: %d %s, want %d %s", p.method, p.path, status, body, p.status, p.code)
		}
	}
	// the mount fallback above opened one upload session; nothing else changed
	sameSnapshot(t, "path traversal", before, snapshot(t, s.root, true))
}

func TestBadInputManifests(t *testing.T) {
	s := startServer(t, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "repository:ns/app:pull,push")
	config := []byte(`{"os":"linux","architecture":"amd64"}`)
	layer := []byte("layer bytes")
	s.pushBlob(tok, "ns/app", config)
	s.pushBlob(tok, "ns/app", layer)
	good := imageManifest(config, layer)
	huge := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"` + strings.Repeat("A", 4<<20) + `"}}`)
	missingLayer := imageManifest(config, layer, []byte("never pushed"))
	missingConfig := imageManifest([]byte("missing config"), layer)
	missingChild := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + sha256Digest([]byte("no such manifest")) + `","size":16}]}`)
	cases := []struct {
		name        string
		contentType string
		body        []byte
		status      int
		code        string
	}{
		{"oversized manifest", "application/vnd.oci.image.manifest.v1+json", huge, 413, "SIZE_INVALID"},
		{"unknown media type", "application/vnd.example.unknown+json", good, 400, "MANIFEST_INVALID"},
		{"docker schema1", "application/vnd.docker.distribution.manifest.v1+prettyjws", good, 400, "MANIFEST_INVALID"},
		{"mediaType field disagrees", "application/vnd.oci.image.index.v1+json", good, 400, "MANIFEST_INVALID"},
		{"unknown mediaType field", "", []byte(`{"schemaVersion":2,"mediaType":"application/x-unknown","config":{}}`), 400, "MANIFEST_INVALID"},
		{"not JSON", "application/vnd.oci.image.manifest.v1+json", []byte("not json"), 400, "MANIFEST_INVALID"},
		{"schemaVersion 3", "application/vnd.oci.image.manifest.v1+json", bytes.Replace(good, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1), 400, "MANIFEST_INVALID"},
		{"bad descriptor digest", "application/vnd.oci.image.manifest.v1+json", bytes.Replace(good, []byte(sha256Digest(layer)), []byte("sha256:../../etc"), 1), 400, "MANIFEST_INVALID"},
		{"missing layer", "application/vnd.oci.image.manifest.v1+json", missingLayer, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"missing config", "application/vnd.oci.image.manifest.v1+json", missingConfig, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"index with missing child", "application/vnd.oci.image.index.v1+json", missingChild, 400, "MANIFEST_BLOB_UNKNOWN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, s.root, false)
			for _, ref := range []string{"v1", sha256Digest(c.body)} {
				opts := []reqOpt{withBearer(tok)}
				if c.contentType != "" {
					opts = append(opts, withHeader("Content-Type", c.contentType))
				}
				resp, b := s.do("PUT", "/v2/ns/app/manifests/"+ref, c.body, opts...)
				expect(t, resp, b, c.status, c.code)
			}
			sameSnapshot(t, c.name, before, snapshot(t, s.root, false))
			resp, b := s.do("GET", "/v2/ns/app/manifests/v1", nil, withBearer(tok))
			expect(t, resp, b, 404, "MANIFEST_UNKNOWN")
		})
	}
	// oversized without Content-Length (chunked transfer encoding)
	before := snapshot(t, s.root, false)
	req, _ := http.NewRequest("PUT", s.url+"/v2/ns/app/manifests/v1", io.MultiReader(bytes.NewReader(huge)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	expect(t, resp, b, 413, "SIZE_INVALID")
	sameSnapshot(t, "chunked oversized", before, snapshot(t, s.root, false))
	// the good one is accepted
	resp, b = s.do("PUT", "/v2/ns/app/manifests/v1", good, withBearer(tok), withHeader("Content-Type", "application/vnd.oci.image.manifest.v1+json"))
	expect(t, resp, b, 201, "")
}

// TestCatalogCap: n above 1000 is lowered to 1000, not refused; the Link
// header leads on. A negative or non-numeric n is a 400.
func TestCatalogCap(t *testing.T) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	st := storage.New(d)
	payload := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	dg := reference.FromBytes(reference.SHA256, payload)
	for i := range 1005 {
		if err := st.PutManifest(context.Background(), fmt.Sprintf("ns%04d/repo", i), dg, "application/vnd.oci.image.index.v1+json", payload); err != nil {
			t.Fatal(err)
		}
	}
	s := startServerAt(t, root, defaultAuthz(), nil)
	tok := s.token("alice", "alice-pw", "registry:catalog:*")
	before := snapshot(t, s.root, false)
	resp, b := s.do("GET", "/v2/_catalog?n=100000000", nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	if c := strings.Count(string(b), `"ns`); c != 1000 {
		t.Fatalf("catalog returned %d repositories, want the cap of 1000", c)
	}
	link := resp.Header.Get("Link")
	if !strings.Contains(link, "last=ns0999%2Frepo") || !strings.Contains(link, `rel="next"`) {
		t.Fatalf("Link %q", link)
	}
	resp, b = s.do("GET", "/v2/_catalog?n=1000&last=ns0999/repo", nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	if c := strings.Count(string(b), `"ns`); c != 5 || resp.Header.Get("Link") != "" {
		t.Fatalf("second page: %d entries, Link %q", c, resp.Header.Get("Link"))
	}
	resp, b = s.do("GET", "/v2/_catalog", nil, withBearer(tok))
	expect(t, resp, b, 200, "")
	if c := strings.Count(string(b), `"ns`); c != 1000 {
		t.Fatalf("default page: %d", c)
	}
	for _, n := range []string{"-1", "abc", strconv.Itoa(-5)} {
		resp, b = s.do("GET", "/v2/_catalog?n="+n, nil, withBearer(tok))
		expect(t, resp, b, 400, "")
	}
	// a user without the catalog right is challenged / denied
	btok := s.token("bob", "bob-pw", "registry:catalog:*")
	resp, b = s.do("GET", "/v2/_catalog", nil, withBearer(btok))
	expect(t, resp, b, 403, "DENIED")
	sameSnapshot(t, "catalog", before, snapshot(t, s.root, false))
}
