// Command triggers measures how long a push through Berth's registry takes to reach a trigger's receiver:
// a whole Berth on embedded defaults (FerretDB, miniredis) on loopback, one ALL trigger pointing at a
// loopback listener, N sequential pushes of small random images with distinct tags.
//
//	go run ./bench/triggers -n 100
//	go run ./bench/triggers -smoke   # seconds: the test command runs this so the bench keeps working
//
// For each push it takes two times: from the start of the manifest PUT (the moment the push becomes a tag)
// and from the end of the push (the client's last answer), each to the delivery's arrival at the listener,
// and prints p50, p90, p99 and max of both beside the floor — the same payload POSTed straight from Go to the
// same receiver — then the process's CPU use over 5 idle seconds (the price of
// polling the queue often). The path measured is the whole pipeline: registry hook, image
// version in the store, push event on the events queue, trigger fan-out, trigger:deliver task, signed POST.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/server/app"
	"github.com/berth-dev/berth/webhooks/outbound"
)

func main() {
	n := flag.Int("n", 100, "pushes")
	check := flag.Duration("queue-check-interval", 0, "override --queue-check-interval (0: Berth's default)")
	redis := flag.String("redis-addr", "", "use this Redis instead of the embedded miniredis")
	smoke := flag.Bool("smoke", false, "a few pushes and a short idle measure, to check the bench still runs (the test command)")
	flag.Parse()
	idle := 5 * time.Second
	if *smoke {
		*n, idle = 5, time.Second
	}
	if err := run(*n, *check, *redis, idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench/triggers:", err)
		os.Exit(1)
	}
}

// stamps records when each tag's manifest PUT started.
type stamps struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (s *stamps) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
		tag := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		s.mu.Lock()
		s.m[tag] = time.Now()
		s.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func run(n int, check time.Duration, redisAddr string, idle time.Duration) error {
	dir, err := os.MkdirTemp("", "berth-bench-triggers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const password = "bench-admin-password"
	os.Setenv("BERTH_ADMIN_PASSWORD", password)

	cfg, err := app.ParseConfig("serve", nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg.Addr, cfg.DataDir, cfg.RedisAddr = ln.Addr().String(), dir, redisAddr
	cfg.TriggerAllow = []string{"127.0.0.0/8"}
	if check > 0 {
		cfg.QueueCheckInterval = check
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Open(ctx, cfg)
	if err != nil {
		cancel()
		ln.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-served
		a.Close()
	}()
	base := "http://" + cfg.Addr
	if err := waitReady(base); err != nil {
		return err
	}

	// The receiver notes when each tag's delivery arrives.
	arrived := make(chan struct {
		tag string
		at  time.Time
	}, n)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var p outbound.Payload
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &p) == nil {
			arrived <- struct {
				tag string
				at  time.Time
			}{p.PushData.Tag, at}
		}
	}))
	defer rcv.Close()

	api := func(method, path, body string) error {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.SetBasicAuth("admin", password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, b)
		}
		return nil
	}
	if err := api("POST", "/api/v1/namespaces", `{"name":"bench"}`); err != nil {
		return err
	}
	if err := api("POST", "/api/v1/namespaces/bench/repositories", `{"name":"app"}`); err != nil {
		return err
	}
	if err := api("POST", "/api/v1/repositories/bench/app/triggers", fmt.Sprintf(`{"name":"bench","url":%q}`, rcv.URL+"/hook")); err != nil {
		return err
	}

	images := make([]v1.Image, n)
	for i := range images {
		if images[i], err = random.Image(1024, 1); err != nil {
			return err
		}
	}
	st := &stamps{m: map[string]time.Time{}}
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	var fromPut, fromDone []time.Duration
	for i, img := range images {
		tag := fmt.Sprintf("v%d", i)
		ref, err := name.ParseReference(cfg.Addr+"/bench/app:"+tag, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img, auth, remote.WithTransport(st)); err != nil {
			return fmt.Errorf("push %s: %w", tag, err)
		}
		done := time.Now()
		select {
		case got := <-arrived:
			if got.tag != tag {
				return fmt.Errorf("delivery for %s arrived while waiting for %s", got.tag, tag)
			}
			st.mu.Lock()
			put := st.m[tag]
			st.mu.Unlock()
			fromPut = append(fromPut, got.at.Sub(put))
			fromDone = append(fromDone, got.at.Sub(done))
		case <-time.After(10 * time.Second):
			return errors.New("no delivery within 10 s of push " + tag)
		}
	}
	// The floor: the same payload POSTed straight from Go to the same receiver, n times in sequence, timed from
	// the start of the request to the receiver's arrival stamp, as the deliveries above are.
	var direct []time.Duration
	for i := range n {
		tag := fmt.Sprintf("direct%d", i)
		body, _ := json.Marshal(outbound.Payload{PushData: outbound.PushData{Tag: tag}})
		start := time.Now()
		resp, err := http.Post(rcv.URL+"/hook", "application/json", strings.NewReader(string(body)))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got := <-arrived
		if got.tag != tag {
			return fmt.Errorf("direct POST %s arrived as %s", tag, got.tag)
		}
		direct = append(direct, got.at.Sub(start))
	}
	what := redisAddr
	if what == "" {
		what = "Berth's default (its redis-server child when installed, else miniredis)"
	}
	fmt.Printf("push → trigger receiver, %d sequential pushes, queue-check-interval %s, redis %s\n", n, cfg.QueueCheckInterval, what)
	report("from manifest PUT start      ", fromPut)
	report("from push completion         ", fromDone)
	report("plain HTTP POST from Go (floor)", direct)
	fmt.Printf("  Berth's path over the floor (p50): %.1f× from push completion\n", float64(median(fromDone))/float64(median(direct)))
	// What the queue polling costs while nothing happens.
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	time.Sleep(idle)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) / time.Duration(idle.Seconds())
	fmt.Printf("  idle CPU of the whole process (Berth + embedded store and queue): %.1f%% of one core\n", float64(cpu)/float64(time.Second)*100)
	return nil
}

func report(label string, d []time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))+0.5)-1)] }
	ms := func(x time.Duration) string { return fmt.Sprintf("%.1f ms", float64(x.Microseconds())/1000) }
	fmt.Printf("  %s  p50 %s  p90 %s  p99 %s  max %s\n", label, ms(q(0.50)), ms(q(0.90)), ms(q(0.99)), ms(s[len(s)-1]))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func waitReady(base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("berth not ready within 30 s")
}
