package app_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/registry/storage/driver/s3/s3test"
	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/server/app/apptest"
)

// TestS3Redirect: with --s3-redirect a blob GET answers 307 to a presigned URL of the S3 server, which serves
// the blob without the registry's credentials, and a real client pulls an image through the redirects. The
// S3 endpoint is named "localhost" and Berth 127.0.0.1, as two hosts would be: a client drops the
// registry's Authorization header when it follows a redirect to another host.
func TestS3Redirect(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	endpoint := strings.Replace(srv.Endpoint, "127.0.0.1", "localhost", 1)
	in := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.S3 = app.S3Config{Endpoint: endpoint, Bucket: bucket, Region: "us-east-1", PathStyle: true, Redirect: true,
			AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey}
	}})
	if r := in.Admin(t, "POST", "/api/v1/namespaces", map[string]any{"name": "team"}); r.Status != 201 {
		t.Fatalf("namespace: %s", r.Body)
	}
	img, err := random.Image(3<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(in.Host+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: apptest.AdminPassword})
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatal(err)
	}
	// A real client pulls every layer through the redirects, digests checked.
	pulled, err := remote.Image(ref, auth)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := pulled.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers: %v %v", layers, err)
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest at EOF
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("pull a layer through the redirect: %v", err)
		}
		rc.Close()
	}
	// The answer itself: 307 to the bucket, which serves the bytes to a client without credentials.
	d, _ := layers[0].Digest()
	req, _ := http.NewRequest("GET", in.URL+"/v2/team/app/blobs/"+d.String(), nil)
	req.SetBasicAuth("admin", apptest.AdminPassword)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusTemporaryRedirect || loc == nil || "http://"+loc.Host != endpoint ||
		!strings.HasPrefix(loc.Path, "/"+bucket+"/blobs/sha256/") || loc.Query().Get("X-Amz-Signature") == "" {
		t.Fatalf("blob GET: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = http.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	size, _ := layers[0].Size()
	if resp.StatusCode != 200 || n != size {
		t.Fatalf("presigned GET: %d, %d bytes of %d", resp.StatusCode, n, size)
	}
	// HEAD is answered by Berth itself.
	req.Method = "HEAD"
	if resp, err = noFollow.Do(req); err != nil || resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("blob HEAD: %v %v", resp, err)
	}
	resp.Body.Close()
}
