package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is a registry under test: one URL per replica.
type target struct {
	name           string
	bases          []string // http://127.0.0.1:port, one per replica
	tokens         []string // a bearer token per replica ("" = none)
	user, password string   // the account crane and skopeo log in with ("" = anonymous)
	pids           []int    // the server processes whose CPU time is reported (S3 targets: versitygw's too)
}

// cpu is the CPU time (user + system) the target's processes have used so far.
func (t *target) cpu() time.Duration {
	var ticks int64
	for _, pid := range t.pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// fields after the command name in parentheses: state is field 3, utime 14, stime 15
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

const repo = "bench/app"

var client = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 128,
	DisableCompression:  true,
	ReadBufferSize:      256 << 10,
	WriteBufferSize:     256 << 10,
}}

// ep picks replica i (modulo their number).
func (t *target) ep(i int) (base, token string) {
	i %= len(t.bases)
	return t.bases[i], t.tokens[i]
}

func (t *target) req(i int, method, u string, body io.Reader, n int64) (*http.Request, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = n
	}
	if _, tok := t.ep(i); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req, nil
}

func (t *target) resolve(i int, loc string) (string, error) {
	base, _ := t.ep(i)
	b, _ := url.Parse(base)
	l, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(l).String(), nil
}

func expectStatus(resp *http.Response, err error, want int) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: status %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, b)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// pushBlob uploads to replica i like docker push: POST, one streamed PATCH, PUT ?digest=.
func pushBlob(t *target, i int, blob []byte, dg string) error {
	base, _ := t.ep(i)
	req, _ := t.req(i, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil, 0)
	resp, err := client.Do(req)
	if err := expectStatus(resp, err, http.StatusAccepted); err != nil {
		return err
	}
	loc, err := t.resolve(i, resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	req, _ = t.req(i, "PATCH", loc, bytes.NewReader(blob), int64(len(blob)))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(req)
	if err := expectStatus(resp, err, http.StatusAccepted); err != nil {
		return err
	}
	loc, err = t.resolve(i, resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("digest", dg)
	u.RawQuery = q.Encode()
	req, _ = t.req(i, "PUT", u.String(), nil, 0)
	resp, err = client.Do(req)
	return expectStatus(resp, err, http.StatusCreated)
}

// pullBlob downloads a blob from replica i and checks its length.
func pullBlob(t *target, i int, dg string, size int64) error {
	base, _ := t.ep(i)
	req, _ := t.req(i, "GET", base+"/v2/"+repo+"/blobs/"+dg, nil, 0)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET blob from %s: status %d", base, resp.StatusCode)
	}
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{resp.Body}, buf)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return nil
}

// parallel runs f(k) for k in [0, n) at once and returns the first error.
func parallel(n int, f func(k int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() { errs[k] = f(k) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func pushSmall(t *target, b []byte) (string, error) {
	dg := digestOf(b)
	base, _ := t.ep(0)
	req, _ := t.req(0, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil, 0)
	resp, err := client.Do(req)
	if err := expectStatus(resp, err, http.StatusAccepted); err != nil {
		return "", err
	}
	loc, _ := t.resolve(0, resp.Header.Get("Location"))
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("digest", dg)
	u.RawQuery = q.Encode()
	req, _ = t.req(0, "PUT", u.String(), bytes.NewReader(b), int64(len(b)))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(req)
	return dg, expectStatus(resp, err, http.StatusCreated)
}

// pushImage pushes a typical small image manifest (config + 5 layers) as :latest through the first replica,
// and returns the manifest.
func pushImage(t *target) ([]byte, error) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)
	cd, err := pushSmall(t, config)
	if err != nil {
		return nil, err
	}
	m := ociManifest{2, mtManifest, ociDesc{MediaType: mtConfig, Digest: cd, Size: int64(len(config))}, nil}
	for i := range 5 {
		l := []byte(fmt.Sprintf("layer %d of the bench image", i))
		ld, err := pushSmall(t, l)
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, ociDesc{MediaType: mtLayer, Digest: ld, Size: int64(len(l))})
	}
	body, _ := json.Marshal(m)
	base, _ := t.ep(0)
	req, _ := t.req(0, "PUT", base+"/v2/"+repo+"/manifests/latest", bytes.NewReader(body), int64(len(body)))
	req.Header.Set("Content-Type", mtManifest)
	resp, err := client.Do(req)
	return body, expectStatus(resp, err, http.StatusCreated)
}

// manifestLoad runs clients goroutines of GET /manifests/latest for dur (after a short warm-up), client c on
// replica c, and returns req/s, the p99 latency and the server's CPU time per request (warm-up included). With
// push set, each request PUTs push (a manifest whose blobs are in the repository) under a new tag instead: a
// push's last step, where Berth records the version.
func manifestLoad(t *target, clients int, dur time.Duration, push []byte) (float64, time.Duration, time.Duration, error) {
	cpu0 := t.cpu()
	var requests atomic.Int64
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		wg        sync.WaitGroup
		mu        sync.Mutex
		all       []time.Duration
		firstErr  error
	)
	for c := range clients {
		wg.Go(func() {
			base, _ := t.ep(c)
			u := base + "/v2/" + repo + "/manifests/latest"
			lat := make([]time.Duration, 0, 1<<16)
			buf := make([]byte, 4096)
			want := http.StatusOK
			for n := 0; !stop.Load(); n++ {
				req, _ := t.req(c, "GET", u, nil, 0)
				req.Header.Set("Accept", mtManifest+", application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json")
				if push != nil {
					want = http.StatusCreated
					tu := base + "/v2/" + repo + fmt.Sprintf("/manifests/put-%d-%d", c, n)
					req, _ = t.req(c, "PUT", tu, bytes.NewReader(push), int64(len(push)))
					req.Header.Set("Content-Type", mtManifest)
				}
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					for {
						if _, rerr := resp.Body.Read(buf); rerr != nil {
							break
						}
					}
					resp.Body.Close()
					if resp.StatusCode != want {
						err = fmt.Errorf("%s manifest at %s: status %d", req.Method, base, resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop.Store(true)
					return
				}
				requests.Add(1)
				if measuring.Load() {
					lat = append(lat, time.Since(start))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	time.Sleep(min(time.Second, dur)) // warm-up: connections, caches
	measuring.Store(true)
	start := time.Now()
	time.Sleep(dur)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	cpu := (t.cpu() - cpu0) / time.Duration(max(requests.Load(), 1))
	if firstErr != nil {
		return 0, 0, 0, firstErr
	}
	if len(all) == 0 {
		return 0, 0, 0, fmt.Errorf("no requests completed")
	}
	slices.Sort(all)
	return float64(len(all)) / elapsed.Seconds(), all[len(all)*99/100], cpu, nil
}
