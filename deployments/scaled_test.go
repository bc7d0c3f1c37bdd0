package deployments_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/server/app"
)

// The scaled shape both files describe: three serve replicas, a worker per build region, a buildkitd per region.
const (
	serveReplicas = 3
	masterKeyName = "master.key"
)

var regions = []string{"default", "overseas"}

// k8sObjects is a manifest file decoded strictly into the Kubernetes API's own types: a misspelt field, or a
// kind this test does not know, fails.
type k8sObjects struct {
	secrets      map[string]*corev1.Secret
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	jobs         map[string]*batchv1.Job
	pdbs         map[string]*policyv1.PodDisruptionBudget
	netpols      map[string]*networkingv1.NetworkPolicy
}

func decodeK8s(t *testing.T, file string) *k8sObjects {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	o := &k8sObjects{secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{},
		services: map[string]*corev1.Service{}, deployments: map[string]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{}, jobs: map[string]*batchv1.Job{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, netpols: map[string]*networkingv1.NetworkPolicy{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 1; ; i++ {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s document %d: %v", file, i, err)
		}
		raw, err := yaml.Marshal(&node)
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		if err := yaml.Unmarshal(raw, &head); err != nil {
			t.Fatal(err)
		}
		strict := func(apiVersion string, into any) string {
			if head.APIVersion != apiVersion {
				t.Errorf("%s document %d: %s %s has apiVersion %q, want %q", file, i, head.Kind, head.Metadata.Name, head.APIVersion, apiVersion)
			}
			if err := sigsyaml.UnmarshalStrict(raw, into); err != nil {
				t.Errorf("%s document %d (%s %s): %v", file, i, head.Kind, head.Metadata.Name, err)
			}
			if head.Metadata.Name == "" {
				t.Errorf("%s document %d: %s without a name", file, i, head.Kind)
			}
			return head.Metadata.Name
		}
		var dup bool
		switch head.Kind {
		case "Secret":
			dup = decodeInto(strict, "v1", o.secrets)
		case "ConfigMap":
			dup = decodeInto(strict, "v1", o.configMaps)
		case "Service":
			dup = decodeInto(strict, "v1", o.services)
		case "Deployment":
			dup = decodeInto(strict, "apps/v1", o.deployments)
		case "StatefulSet":
			dup = decodeInto(strict, "apps/v1", o.statefulSets)
		case "Job":
			dup = decodeInto(strict, "batch/v1", o.jobs)
		case "PodDisruptionBudget":
			dup = decodeInto(strict, "policy/v1", o.pdbs)
		case "NetworkPolicy":
			dup = decodeInto(strict, "networking.k8s.io/v1", o.netpols)
		default:
			t.Fatalf("%s document %d: kind %q is not one this test checks", file, i, head.Kind)
		}
		if dup {
			t.Errorf("%s: two %s named %s", file, head.Kind, head.Metadata.Name)
		}
	}
	return o
}

// workload is a pod template and the object that runs it.
type workload struct {
	kind, name string
	replicas   int32
	pod        *corev1.PodTemplateSpec
	claims     []string // volumeClaimTemplates
}

func (o *k8sObjects) workloads(t *testing.T) []workload {
	t.Helper()
	var out []workload
	for n, d := range o.deployments {
		out = append(out, workload{"Deployment", n, ptrVal(d.Spec.Replicas, 1), &d.Spec.Template, nil})
		checkSelector(t, "Deployment "+n, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	for n, s := range o.statefulSets {
		w := workload{"StatefulSet", n, ptrVal(s.Spec.Replicas, 1), &s.Spec.Template, nil}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Name)
		}
		out = append(out, w)
		checkSelector(t, "StatefulSet "+n, s.Spec.Selector.MatchLabels, s.Spec.Template.Labels)
		if _, ok := o.services[s.Spec.ServiceName]; !ok {
			t.Errorf("StatefulSet %s names Service %q, which is not in the file", n, s.Spec.ServiceName)
		}
	}
	for n, j := range o.jobs {
		out = append(out, workload{"Job", n, 1, &j.Spec.Template, nil})
	}
	slices.SortFunc(out, func(a, b workload) int { return strings.Compare(a.kind+a.name, b.kind+b.name) })
	return out
}

func ptrVal(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func checkSelector(t *testing.T, where string, sel, labels map[string]string) {
	t.Helper()
	if len(sel) == 0 || !matches(sel, labels) {
		t.Errorf("%s: selector %v does not select its own pods %v", where, sel, labels)
	}
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkReferences: every Secret and ConfigMap (and key) a pod reads is in the file, and every mount names a
// volume of the pod.
func (o *k8sObjects) checkReferences(t *testing.T, w workload) {
	t.Helper()
	where := w.kind + " " + w.name
	secretKey := func(name, key string) {
		s, ok := o.secrets[name]
		if !ok {
			t.Errorf("%s reads Secret %q, which is not in the file", where, name)
			return
		}
		if _, ok := s.StringData[key]; key != "" && !ok {
			t.Errorf("%s reads key %q of Secret %s, which has no such key", where, key, name)
		}
	}
	configKey := func(name, key string) {
		c, ok := o.configMaps[name]
		if !ok {
			t.Errorf("%s reads ConfigMap %q, which is not in the file", where, name)
			return
		}
		if _, ok := c.Data[key]; key != "" && !ok {
			t.Errorf("%s reads key %q of ConfigMap %s, which has no such key", where, key, name)
		}
	}
	volumes := map[string]bool{}
	for _, c := range w.claims {
		volumes[c] = true
	}
	for _, v := range w.pod.Spec.Volumes {
		volumes[v.Name] = true
		if v.Secret != nil {
			secretKey(v.Secret.SecretName, "")
			for _, it := range v.Secret.Items {
				secretKey(v.Secret.SecretName, it.Key)
			}
		}
		if v.ConfigMap != nil {
			configKey(v.ConfigMap.Name, "")
			for _, it := range v.ConfigMap.Items {
				configKey(v.ConfigMap.Name, it.Key)
			}
		}
	}
	for _, c := range append(slices.Clone(w.pod.Spec.InitContainers), w.pod.Spec.Containers...) {
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil {
				secretKey(ef.SecretRef.Name, "")
			}
			if ef.ConfigMapRef != nil {
				configKey(ef.ConfigMapRef.Name, "")
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				secretKey(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				configKey(e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key)
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s container %s mounts volume %q, which the pod does not have", where, c.Name, m.Name)
			}
		}
	}
}

// servedBy returns the one workload a Service selects, and checks the Service's ports reach its containers.
func (o *k8sObjects) servedBy(t *testing.T, ws []workload, svc string) *workload {
	t.Helper()
	s, ok := o.services[svc]
	if !ok {
		t.Errorf("no Service %s", svc)
		return nil
	}
	var found []*workload
	for i := range ws {
		if len(s.Spec.Selector) > 0 && matches(s.Spec.Selector, ws[i].pod.Labels) {
			found = append(found, &ws[i])
		}
	}
	if len(found) != 1 {
		t.Errorf("Service %s selects %d workloads, want 1", svc, len(found))
		return nil
	}
	ports := map[int32]bool{}
	for _, c := range found[0].pod.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.ContainerPort] = true
		}
	}
	for _, p := range s.Spec.Ports {
		if !ports[p.TargetPort.IntVal] {
			t.Errorf("Service %s sends port %d to %s, whose containers listen on %v", svc, p.Port, p.TargetPort.String(), ports)
		}
	}
	return found[0]
}

// servicePort returns the port the Service named by host:port exposes, checking it exists.
func (o *k8sObjects) servicePort(t *testing.T, where, hostport string) string {
	t.Helper()
	host, port, _ := strings.Cut(hostport, ":")
	s, ok := o.services[host]
	if !ok {
		t.Errorf("%s: %s names no Service of the file", where, hostport)
		return ""
	}
	for _, p := range s.Spec.Ports {
		if fmt.Sprint(p.Port) == port {
			return port
		}
	}
	t.Errorf("%s: Service %s has no port %s", where, host, port)
	return ""
}

// mountedFile says which Secret or ConfigMap key a container reads at path p, by its volume mounts.
func mountedFile(w workload, c corev1.Container, p string) (kind, name, key string, readOnly bool) {
	for _, m := range c.VolumeMounts {
		if path.Dir(p) != m.MountPath {
			continue
		}
		for _, v := range w.pod.Spec.Volumes {
			switch {
			case v.Name != m.Name:
			case v.Secret != nil:
				return "Secret", v.Secret.SecretName, path.Base(p), m.ReadOnly
			case v.ConfigMap != nil:
				return "ConfigMap", v.ConfigMap.Name, path.Base(p), m.ReadOnly
			}
		}
	}
	return "", "", "", false
}

// berthConfig parses a Berth container's settings as the process would: its BERTH_* environment (from its
// Secrets), its arguments, and the --config file from its ConfigMap.
func (o *k8sObjects) berthConfig(t *testing.T, w workload, c corev1.Container) (command string, cfg *app.Config) {
	t.Helper()
	where := w.kind + " " + w.name
	if len(c.Args) == 0 || (c.Args[0] != "serve" && c.Args[0] != "worker") {
		t.Fatalf("%s: args %v do not start with serve or worker", where, c.Args)
	}
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef == nil {
			t.Fatalf("%s: envFrom %+v: Berth's environment comes from Secrets here", where, ef)
		}
		for k, v := range o.secrets[ef.SecretRef.Name].StringData {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["BERTH_ADMIN_PASSWORD"] == "" {
		t.Errorf("%s: no BERTH_ADMIN_PASSWORD (the first process on an empty store creates the administrator)", where)
	}
	args := slices.Clone(c.Args[1:])
	if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
		kind, name, key, ro := mountedFile(w, c, args[i+1])
		if kind != "ConfigMap" || !ro {
			t.Fatalf("%s: --config %s is not a read-only mounted ConfigMap key", where, args[i+1])
		}
		file := filepath.Join(t.TempDir(), key)
		if err := os.WriteFile(file, []byte(o.configMaps[name].Data[key]), 0o600); err != nil {
			t.Fatal(err)
		}
		args[i+1] = file
	}
	return c.Args[0], checkBerthSettings(t, where, c.Args[0], env, args)
}

// TestKubernetesScaled reads kubernetes/berth-scaled.yaml with the Kubernetes API's own types and each Berth
// container's settings as Berth parses them, and checks the scaled shape: serve replicas behind a Service,
// a worker Deployment and a buildkitd per region, one master key for all, a three-member MongoDB replica set
// initiated by a Job, Redis and S3 with the keys Berth is given, and a GC schedule.
func TestKubernetesScaled(t *testing.T) {
	o := decodeK8s(t, filepath.Join("kubernetes", "berth-scaled.yaml"))
	ws := o.workloads(t)
	for _, w := range ws {
		o.checkReferences(t, w)
	}
	for n, p := range o.pdbs {
		if p.Spec.Selector == nil || len(o.deploymentsSelectedBy(p.Spec.Selector.MatchLabels)) != 1 {
			t.Errorf("PodDisruptionBudget %s selects no single Deployment", n)
		}
	}

	type berthProc struct {
		w       workload
		command string
		cfg     *app.Config
	}
	var serves, workers []berthProc
	masterKeys := map[string]bool{}
	for _, w := range ws {
		for _, c := range w.pod.Spec.Containers {
			if !strings.Contains(c.Image, "/berth/berth:") {
				continue
			}
			command, cfg := o.berthConfig(t, w, c)
			p := berthProc{w, command, cfg}
			if command == "serve" {
				serves = append(serves, p)
			} else {
				workers = append(workers, p)
			}
			kind, name, key, ro := mountedFile(w, c, cfg.MasterKeyFile)
			if kind != "Secret" || key != masterKeyName || !ro {
				t.Errorf("%s %s: --master-key-file %q is not a read-only mounted Secret key %s", w.kind, w.name, cfg.MasterKeyFile, masterKeyName)
			}
			masterKeys[name] = true
			// Shared state: the replica set, Redis, the bucket.
			mongo, err := url.Parse(cfg.MongoURI)
			if err != nil || mongo.Query().Get("replicaSet") != "rs0" || mongo.Host != "mongo-0.mongo:27017,mongo-1.mongo:27017,mongo-2.mongo:27017" {
				t.Errorf("%s: mongo URI %q: want the three members of rs0", w.name, cfg.MongoURI)
			}
			redisURL, err := url.Parse(cfg.RedisAddr)
			if err != nil || redisURL.Scheme != "redis" || o.servicePort(t, w.name, redisURL.Host) != "6379" {
				t.Errorf("%s: redis address %q", w.name, cfg.RedisAddr)
			} else if pw, _ := redisURL.User.Password(); pw != o.secrets["redis-auth"].StringData["password"] {
				t.Errorf("%s: the Redis password in BERTH_REDIS_ADDR is not redis-auth's", w.name)
			}
			s3u, err := url.Parse(cfg.S3.Endpoint)
			if err != nil || s3u.Scheme != "http" || o.servicePort(t, w.name, s3u.Host) != "7070" || cfg.S3.Bucket != "berth-blobs" ||
				!cfg.S3.PathStyle || cfg.S3.AccessKey == "" || cfg.S3.SecretKey == "" {
				t.Errorf("%s: S3 settings %+v", w.name, cfg.S3)
			}
			// Its region's buildkitd.
			bk, err := url.Parse(cfg.BuildkitAddr)
			if err != nil || bk.Scheme != "tcp" || o.servicePort(t, w.name, bk.Host) != "1234" {
				t.Errorf("%s: --buildkit-addr %q", w.name, cfg.BuildkitAddr)
			} else if d := o.servedBy(t, ws, bk.Hostname()); d == nil || d.pod.Spec.Containers[0].Image != "moby/buildkit:v0.34.2" {
				t.Errorf("%s: %s is not a buildkitd of the pinned version", w.name, bk.Hostname())
			}
			if cfg.PublicURL != "https://registry.example.com" || cfg.DataDir != "/var/lib/berth" {
				t.Errorf("%s: public URL %q, data dir %q", w.name, cfg.PublicURL, cfg.DataDir)
			}
		}
	}
	if len(masterKeys) != 1 || !masterKeys["berth-master-key"] {
		t.Errorf("master keys from Secrets %v, want all from berth-master-key", masterKeys)
	}

	// serve: N replicas behind the Service, the GC schedule, the home queue on buildkitd-default.
	if len(serves) != 1 {
		t.Fatalf("%d workloads run berth serve, want 1", len(serves))
	}
	s := serves[0]
	if s.w.kind != "Deployment" || s.w.replicas != serveReplicas || s.cfg.GCInterval != 24*time.Hour ||
		s.cfg.GCUntaggedGrace != 24*time.Hour || s.cfg.GCBlobGrace != time.Hour || s.cfg.Queues != "" ||
		s.cfg.BuildkitAddr != "tcp://buildkitd-default:1234" || s.cfg.Region != "cn-hangzhou" {
		t.Errorf("berth serve: %s %s, %d replicas, settings %+v", s.w.kind, s.w.name, s.w.replicas, s.cfg)
	}
	if lb := o.servedBy(t, ws, "berth"); lb == nil || lb.name != s.w.name || !strings.HasSuffix(s.cfg.Addr, ":5000") {
		t.Errorf("Service berth does not reach berth serve (--addr %s)", s.cfg.Addr)
	}
	if svc := o.services["berth"]; svc == nil || svc.Spec.Type != corev1.ServiceTypeLoadBalancer ||
		svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service berth: want a LoadBalancer keeping client addresses (externalTrafficPolicy Local)")
	}

	// workers: one Deployment per region, its queue and its region's buildkitd.
	var got []string
	for _, w := range workers {
		got = append(got, fmt.Sprintf("%s %s queues=%s region=%s buildkit=%s", w.w.kind, w.w.name, w.cfg.Queues, w.cfg.Region, w.cfg.BuildkitAddr))
	}
	slices.Sort(got)
	var want []string
	for _, r := range regions {
		want = append(want, fmt.Sprintf("Deployment berth-worker-%s queues=%s region=%s buildkit=tcp://buildkitd-%s:1234", r, r, r, r))
	}
	if !slices.Equal(got, want) {
		t.Errorf("berth workers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// MongoDB: three members under a headless Service, started as rs0, and a Job that initiates exactly them.
	m := o.statefulSets["mongo"]
	if m == nil || ptrVal(m.Spec.Replicas, 1) != 3 || m.Spec.ServiceName != "mongo" ||
		!slices.Equal(m.Spec.Template.Spec.Containers[0].Args, []string{"--replSet", "rs0", "--bind_ip_all"}) {
		t.Fatalf("StatefulSet mongo: %+v", m)
	}
	if svc := o.services["mongo"]; svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service mongo is not headless: the members need their own names")
	}
	o.servedBy(t, ws, "mongo")
	job := o.jobs["mongo-init-replica-set"]
	if job == nil {
		t.Fatal("no Job mongo-init-replica-set")
	}
	script := strings.Join(job.Spec.Template.Spec.Containers[0].Command, " ")
	for _, want := range []string{"mongodb://mongo-0.mongo:27017/?directConnection=true", `rs.initiate({_id: "rs0"`,
		`{_id: 0, host: "mongo-0.mongo:27017"}`, `{_id: 1, host: "mongo-1.mongo:27017"}`, `{_id: 2, host: "mongo-2.mongo:27017"}`} {
		if !strings.Contains(script, want) {
			t.Errorf("the replica set Job does not say %s:\n%s", want, script)
		}
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("the replica set Job must retry until MongoDB answers")
	}

	// Redis with the password Berth uses; S3 with the keys Berth uses and the bucket it names.
	redis := o.servedBy(t, ws, "redis")
	if redis == nil || !slices.Equal(redis.pod.Spec.Containers[0].Args, []string{"redis-server", "--appendonly", "yes", "--requirepass", "$(REDIS_PASSWORD)"}) ||
		redis.pod.Spec.Containers[0].Env[0].ValueFrom.SecretKeyRef.Name != "redis-auth" {
		t.Errorf("Redis does not require redis-auth's password")
	}
	s3 := o.servedBy(t, ws, "s3")
	if s3 == nil {
		t.Fatal("no S3 server")
	}
	keys := map[string]string{}
	for _, e := range s3.pod.Spec.Containers[0].Env {
		keys[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
	}
	if keys["ROOT_ACCESS_KEY"] != "berth-secrets/BERTH_S3_ACCESS_KEY" || keys["ROOT_SECRET_KEY"] != "berth-secrets/BERTH_S3_SECRET_KEY" ||
		!slices.Equal(s3.pod.Spec.InitContainers[0].Command, []string{"mkdir", "-p", "/data/berth-blobs"}) {
		t.Errorf("S3 server: keys %v, init %v", keys, s3.pod.Spec.InitContainers[0].Command)
	}

	// The build daemons take requests from Berth only, and cannot reach the data stores.
	bp := o.netpols["buildkitd"]
	if bp == nil || bp.Spec.PodSelector.MatchLabels["app"] != "buildkitd" || len(bp.Spec.Ingress) != 1 {
		t.Fatalf("NetworkPolicy buildkitd: %+v", bp)
	}
	dp := o.netpols["data-stores"]
	if dp == nil || len(dp.Spec.Ingress) != 1 {
		t.Fatalf("NetworkPolicy data-stores: %+v", dp)
	}
	for _, w := range ws {
		isData := matches(dp.Spec.PodSelector.MatchLabels, w.pod.Labels)
		if want := w.name == "mongo" || w.name == "redis" || w.name == "s3"; isData != want {
			t.Errorf("%s %s: under the data-stores NetworkPolicy %v, want %v", w.kind, w.name, isData, want)
		}
	}
	from := dp.Spec.Ingress[0].From[0].PodSelector.MatchExpressions[0]
	if from.Key != "app" || from.Operator != "In" || !slices.Equal(from.Values, []string{"berth", "berth-worker", "mongo", "mongo-init"}) {
		t.Errorf("the data stores answer pods with %+v, want Berth's, MongoDB's members and its init Job only", from)
	}
}

func (o *k8sObjects) deploymentsSelectedBy(sel map[string]string) []string {
	var out []string
	for n, d := range o.deployments {
		if matches(sel, d.Spec.Template.Labels) {
			out = append(out, n)
		}
	}
	return out
}

// composeFile is the part of a compose file the tests read; anchors and merge keys are resolved by the
// YAML decoder, ${VAR} interpolation by interpolate.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Networks    []string          `yaml:"networks"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		Deploy      struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"deploy"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

// interpolate expands ${VAR}, ${VAR:-default} and ${VAR:?message} as compose does, from vars.
func interpolate(s string, vars map[string]string) string {
	return os.Expand(s, func(expr string) string {
		name, rest, _ := strings.Cut(expr, ":")
		if v, ok := vars[name]; ok && v != "" {
			return v
		}
		if d, ok := strings.CutPrefix(rest, "-"); ok {
			return d
		}
		return ""
	})
}

// composeCommand is docker compose, or Debian's docker-compose.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("neither docker compose nor docker-compose is installed: scripts/install-test-deps.sh installs docker-compose")
	}
	return []string{"docker-compose"}
}

// TestComposeScaled reads compose.scaled.yaml's Berth services as Berth parses them and checks the scaled
// shape (serve replicas behind the load balancer, a worker and a buildkitd per region, one master key, the
// replica set, Redis and S3 with the credentials Berth uses), then has docker compose validate the file,
// refusing it without each required secret.
func TestComposeScaled(t *testing.T) {
	const file = "compose.scaled.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	vars := map[string]string{"BERTH_ADMIN_PASSWORD": "admin-pw", "BERTH_S3_ACCESS_KEY": "s3-access", "BERTH_S3_SECRET_KEY": "s3-secret",
		"REDIS_PASSWORD": "redis-pw", "BERTH_PUBLIC_URL": "http://192.0.2.10:5000"}
	berth := func(name string) (string, *app.Config) {
		t.Helper()
		svc, ok := c.Services[name]
		if !ok || len(svc.Command) == 0 {
			t.Fatalf("%s: no service %s with a command", file, name)
		}
		env := map[string]string{}
		for k, v := range svc.Environment {
			env[k] = interpolate(v, vars)
		}
		cfg := checkBerthSettings(t, file+" "+name, svc.Command[0], env, svc.Command[1:])
		if interpolate(svc.Environment["BERTH_ADMIN_PASSWORD"], vars) != "admin-pw" {
			t.Errorf("%s: no BERTH_ADMIN_PASSWORD (the first process on an empty store creates the administrator)", name)
		}
		if !slices.Contains(svc.Secrets, "berth-master-key") || cfg.MasterKeyFile != "/run/secrets/berth-master-key" {
			t.Errorf("%s: master key %q, secrets %v: want the shared berth-master-key", name, cfg.MasterKeyFile, svc.Secrets)
		}
		if cfg.MongoURI != "mongodb://mongo-0:27017,mongo-1:27017,mongo-2:27017/?replicaSet=rs0" ||
			cfg.RedisAddr != "redis://:redis-pw@redis:6379/0" || cfg.PublicURL != "http://192.0.2.10:5000" ||
			cfg.S3 != (app.S3Config{Endpoint: "http://s3:7070", Bucket: "berth-blobs", Region: "us-east-1", PathStyle: true,
				AccessKey: "s3-access", SecretKey: "s3-secret"}) {
			t.Errorf("%s: shared settings %+v", name, cfg)
		}
		wantNets := []string{"backend", "builds"}
		if svc.Command[0] == "serve" {
			wantNets = append(wantNets, "edge") // behind the load balancer
		}
		if !slices.Equal(svc.Networks, wantNets) {
			t.Errorf("%s: networks %v, want %v", name, svc.Networks, wantNets)
		}
		bk := strings.TrimPrefix(cfg.BuildkitAddr, "tcp://")
		host, port, _ := strings.Cut(bk, ":")
		if b, ok := c.Services[host]; !ok || port != "1234" || b.Image != "moby/buildkit:v0.34.2" ||
			!slices.Equal(b.Command[:2], []string{"--addr", "tcp://0.0.0.0:1234"}) || !slices.Equal(b.Networks, []string{"builds"}) {
			t.Errorf("%s: --buildkit-addr %s is no buildkitd of the file, on the builds network only", name, cfg.BuildkitAddr)
		}
		return svc.Command[0], cfg
	}
	if command, cfg := berth("berth"); command != "serve" || cfg.Addr != "0.0.0.0:5000" || cfg.GCInterval != 24*time.Hour ||
		cfg.GCBlobGrace != time.Hour || cfg.GCUntaggedGrace != 24*time.Hour || cfg.BuildkitAddr != "tcp://buildkitd-default:1234" ||
		c.Services["berth"].Deploy.Replicas != serveReplicas || len(c.Services["berth"].Ports) != 0 {
		t.Errorf("berth: %s, %d replicas, ports %v, %+v", command, c.Services["berth"].Deploy.Replicas, c.Services["berth"].Ports, cfg)
	}
	for _, r := range regions {
		command, cfg := berth("worker-" + r)
		if command != "worker" || cfg.Queues != r || cfg.Region != r || cfg.BuildkitAddr != "tcp://buildkitd-"+r+":1234" {
			t.Errorf("worker-%s: %s queues %q region %q buildkit %q", r, command, cfg.Queues, cfg.Region, cfg.BuildkitAddr)
		}
	}
	if c.Secrets["berth-master-key"].File != "./master.key" {
		t.Errorf("secret berth-master-key: %+v", c.Secrets["berth-master-key"])
	}

	// The load balancer publishes the one port and sends everything to the serve replicas, which trust the edge
	// network it shares with them alone to name the client (X-Forwarded-For); workers trust nobody.
	lb := c.Services["lb"]
	if !slices.Equal(lb.Ports, []string{"5000:5000"}) || !slices.Equal(lb.Volumes, []string{"./nginx.scaled.conf:/etc/nginx/nginx.conf:ro"}) ||
		!slices.Equal(lb.Networks, []string{"edge"}) {
		t.Errorf("lb: %+v", lb)
	}
	edge := c.Networks["edge"].IPAM.Config
	if _, serve := berth("berth"); len(edge) != 1 || interpolate(edge[0].Subnet, vars) != "172.31.254.0/24" ||
		!slices.Equal(serve.TrustedProxy, []string{"172.31.254.0/24"}) {
		t.Errorf("berth serve trusts %v; the edge network is %+v", serve.TrustedProxy, edge)
	}
	for name, svc := range c.Services {
		if slices.Contains(svc.Networks, "edge") && name != "lb" && name != "berth" {
			t.Errorf("%s is on the edge network, whose addresses berth serve trusts", name)
		}
	}
	for _, r := range regions {
		if _, w := berth("worker-" + r); len(w.TrustedProxy) != 0 {
			t.Errorf("worker-%s trusts proxies %v", r, w.TrustedProxy)
		}
	}
	conf, err := os.ReadFile("nginx.scaled.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server berth:5000 resolve;", "listen 5000;", "client_max_body_size 0;", "proxy_request_buffering off;", "proxy_pass http://berth;"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nginx.scaled.conf does not say %q", want)
		}
	}

	// The replica set, initiated once from its members; Redis and S3 with the credentials Berth is given.
	for i := range 3 {
		m := c.Services[fmt.Sprintf("mongo-%d", i)]
		if m.Image != "mongo:7" || !slices.Equal(m.Command, []string{"--replSet", "rs0", "--bind_ip_all"}) || !slices.Equal(m.Networks, []string{"backend"}) {
			t.Errorf("mongo-%d: %+v", i, m)
		}
	}
	init := strings.Join(c.Services["mongo-init"].Entrypoint, " ")
	for _, want := range []string{`rs.initiate({_id: "rs0"`, `{_id: 0, host: "mongo-0:27017"}`, `{_id: 1, host: "mongo-1:27017"}`, `{_id: 2, host: "mongo-2:27017"}`} {
		if !strings.Contains(init, want) {
			t.Errorf("mongo-init does not say %s", want)
		}
	}
	redis := c.Services["redis"]
	if got := interpolate(strings.Join(redis.Command, " "), vars); got != "redis-server --appendonly yes --requirepass redis-pw" {
		t.Errorf("redis: %s", got)
	}
	s3 := c.Services["s3"]
	if interpolate(s3.Environment["ROOT_ACCESS_KEY"], vars) != "s3-access" || interpolate(s3.Environment["ROOT_SECRET_KEY"], vars) != "s3-secret" ||
		!slices.Equal(c.Services["s3-init"].Command, []string{"mkdir", "-p", "/data/berth-blobs"}) {
		t.Errorf("s3: %+v, init %v", s3, c.Services["s3-init"].Command)
	}
	for _, svc := range []string{"redis", "s3"} {
		if !slices.Equal(c.Services[svc].Networks, []string{"backend"}) {
			t.Errorf("%s: networks %v, want backend only", svc, c.Services[svc].Networks)
		}
	}

	// docker compose's own validation: with every required value it passes; without one, it says which.
	compose := composeCommand(t)
	run := func(env ...string) (string, error) {
		cmd := exec.Command(compose[0], append(compose[1:], "-f", file, "config", "-q")...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	var all []string
	for k, v := range vars {
		all = append(all, k+"="+v)
	}
	if out, err := run(all...); err != nil {
		t.Errorf("docker compose config: %v\n%s", err, out)
	}
	for _, k := range []string{"BERTH_ADMIN_PASSWORD", "BERTH_S3_ACCESS_KEY", "BERTH_S3_SECRET_KEY", "REDIS_PASSWORD"} {
		env := append(slices.Clone(all), k+"=")
		want := "set " + k
		if k == "BERTH_ADMIN_PASSWORD" {
			want = "set an administrator password"
		}
		if out, err := run(env...); err == nil || !strings.Contains(out, want) {
			t.Errorf("docker compose config without %s: %v\n%s", k, err, out)
		}
	}
}

// decodeInto decodes the document (strict) as a new T into m under its name, and reports whether m had that name.
func decodeInto[T any](strict func(apiVersion string, into any) string, apiVersion string, m map[string]*T) (dup bool) {
	v := new(T)
	n := strict(apiVersion, v)
	_, dup = m[n]
	m[n] = v
	return dup
}
