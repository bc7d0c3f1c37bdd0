package app

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/workers/scandb"
)

// Config is everything `berth serve` and `berth worker` take. Each field is a flag; each flag can also come
// from the environment as BERTH_<FLAG> (dashes as underscores) or from the YAML --config file under its own
// name. Precedence: flag, then environment, then file, then default.
type Config struct {
	ConfigFile     string
	DataDir        string
	Addr           string
	PublicURL      string
	Region         string
	MongoURI       string
	MongoDatabase  string
	RedisAddr      string
	RedisCluster   string
	BuildkitAddr   string
	Queues         string
	NamespaceLimit int
	MasterKeyFile  string
	MasterKey      string
	LogLevel       string
	LogFormat      string
	TriggerAllow   listFlag
	SourceAllow    listFlag
	BuildAllow     listFlag
	TrustedProxy   listFlag
	ScanDBDir      string
	ScannerBin     string
	ScannerAddr    string
	// ScanDBRepository is the OCI artifact the vulnerability DB is downloaded from ("" = never download).
	ScanDBRepository string
	ScanDBUsername   string
	ScanDBInsecure   bool
	TokenTTL         string
	TimeZone         string

	TriggerRecordRetention time.Duration
	TriggerRetryBase       time.Duration
	QueueCheckInterval     time.Duration
	ScanDBCheckInterval    time.Duration
	CheckoutCache          int
	BuildQueueTimeout      time.Duration
	GCInterval             time.Duration
	RetentionInterval      time.Duration
	GCUntaggedGrace        time.Duration
	GCBlobGrace            time.Duration
	AuditRetention         time.Duration
	AuditPulls             bool

	S3 S3Config

	// NoBuildSigning leaves builds unsigned and unattested (no flag: benchmarks compare with and without).
	NoBuildSigning bool

	// Logger, when set, is used instead of one made from LogLevel and LogFormat (tests set it).
	Logger *slog.Logger
}

type listFlag []string

// wildcardHost reports whether the host of addr (HOST:PORT) listens on every address: 0.0.0.0, [::] or empty.
func wildcardHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// publicURL is --public-url, else http://ADDR, else "" when --addr is a wildcard: then every request's own
// URL (forwarded.PublicURL), since a wildcard address is no address a client can use.
func (c *Config) publicURL() string {
	switch {
	case c.PublicURL != "":
		return strings.TrimRight(c.PublicURL, "/")
	case wildcardHost(c.Addr):
		return ""
	default:
		return "http://" + c.Addr
	}
}

// internalURL is where this process's builds push and its scanner pulls: --public-url, else the listener
// itself (on loopback when --addr is a wildcard).
func (c *Config) internalURL() (*url.URL, error) {
	raw := c.publicURL()
	if raw == "" {
		_, port, _ := net.SplitHostPort(c.Addr)
		raw = "http://" + net.JoinHostPort("127.0.0.1", port)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--public-url %q: builds push to and the scanner pulls from this host, so it must be a URL like http://registry.example:5000", raw)
	}
	return u, nil
}

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func (c *Config) Flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("berth "+name, flag.ContinueOnError)
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file whose keys are these flags' names")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "where the embedded store, blobs, keys and scan DB live")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:5000", "listen address of the API and the registry")
	fs.StringVar(&c.PublicURL, "public-url", "", "external URL used in tokens, pull commands and webhook URLs (default http://ADDR; with a wildcard --addr such as 0.0.0.0:5000, the URL each client used)")
	fs.Var(&c.TrustedProxy, "trusted-proxy", "CIDR or address of a load balancer in front of Berth (repeatable): requests from it name their client in X-Forwarded-For (and their URL in X-Forwarded-Host/-Proto); without it those headers are ignored")
	fs.StringVar(&c.Region, "region", "local", "this instance's region, used in RAM resource names and trigger payloads")
	fs.StringVar(&c.MongoURI, "mongo-uri", "", "MongoDB URI (default: embedded FerretDB in the data dir)")
	fs.StringVar(&c.MongoDatabase, "mongo-database", "berth", "database name inside --mongo-uri")
	fs.StringVar(&c.RedisAddr, "redis-addr", "", "Redis address host:port or URI redis://, redis-sentinel:// (default: a redis-server child keeping the queue in DATA/queue, or in-memory miniredis when redis-server is not installed)")
	fs.StringVar(&c.RedisCluster, "redis-cluster", "", "comma-separated Redis Cluster node addresses (instead of --redis-addr)")
	fs.StringVar(&c.BuildkitAddr, "buildkit-addr", "", "BuildKit daemon address for this region's builds (default: start buildkitd when installed)")
	fs.StringVar(&c.Queues, "queues", "", "build queues (regions) this process works on, comma-separated (default: the region's own queue; serve: none for no build workers)")
	fs.IntVar(&c.NamespaceLimit, "namespace-limit", 3, "namespaces per account (0 = unlimited)")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", "", "file holding the key that seals secrets at rest (default DATA/keys/master.key)")
	fs.StringVar(&c.MasterKey, "master-key", "", "the key that seals secrets at rest, 64 hex characters, instead of --master-key-file; give it as BERTH_MASTER_KEY or in the config file, not on the command line")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.Var(&c.TriggerAllow, "trigger-allow-cidr", "CIDR that trigger deliveries may reach although private (repeatable)")
	fs.Var(&c.SourceAllow, "source-allow-cidr", "CIDR that non-administrators' code sources (self-hosted Git) may reach although private (repeatable)")
	fs.Var(&c.BuildAllow, "build-allow-cidr", "IPv4 CIDR that builds (RUN steps and what BuildKit fetches: ADD, Git, FROM) may reach although private (repeatable); the Berth host itself stays out of reach")
	fs.StringVar(&c.ScanDBDir, "scan-db-dir", "", "Trivy vulnerability DB directory (default DATA/trivy)")
	fs.StringVar(&c.ScannerBin, "scanner-bin", "", "path of the berth-scanner binary (default: beside berth, then PATH)")
	fs.StringVar(&c.ScannerAddr, "scanner-addr", "", "address of a running berth-scanner (instead of starting one)")
	fs.StringVar(&c.ScanDBRepository, "scan-db-repository", scandb.DefaultRepository, "OCI artifact of the vulnerability DB in Trivy's format, downloaded when missing and when it changes (\"\" = no downloads: air-gapped)")
	fs.StringVar(&c.ScanDBUsername, "scan-db-username", "", "user name for --scan-db-repository (password in $BERTH_SCAN_DB_PASSWORD)")
	fs.BoolVar(&c.ScanDBInsecure, "scan-db-insecure", false, "reach --scan-db-repository over plain HTTP (loopback and private addresses always are)")
	fs.DurationVar(&c.ScanDBCheckInterval, "scan-db-check-interval", 10*time.Minute, "how often the vulnerability DB is checked for a new version (then recent images are rescanned)")
	fs.StringVar(&c.TokenTTL, "token-ttl", "1h", "default lifetime of temporary registry tokens (at most 12h)")
	fs.StringVar(&c.TimeZone, "time-zone", "Local", "IANA time zone of the times in trigger payloads, e.g. Asia/Shanghai (Local = the host's)")
	fs.DurationVar(&c.TriggerRecordRetention, "trigger-record-retention", 720*time.Hour, "how long trigger access records are kept")
	fs.DurationVar(&c.TriggerRetryBase, "trigger-retry-base", 10*time.Second, "first retry delay of a failed trigger delivery (then doubled per attempt, 5 attempts in all)")
	fs.IntVar(&c.CheckoutCache, "checkout-cache", 8, "recent commit checkouts a build worker keeps, so rebuilding a commit skips the clone (0: none)")
	fs.DurationVar(&c.QueueCheckInterval, "queue-check-interval", 50*time.Millisecond, "pause between an idle worker's polls of its queues (tasks Berth queues wake waiting workers at once; this delays retries)")
	fs.DurationVar(&c.BuildQueueTimeout, "build-queue-timeout", time.Hour, "a build QUEUED this long while no live worker takes its region's queue ends FAILED (0: never)")
	c.S3.flags(fs)
	fs.DurationVar(&c.GCInterval, "gc-interval", 24*time.Hour, "how often the registry's garbage collection runs (0: only on demand, berth admin gc or POST /api/v1/system/gc)")
	fs.DurationVar(&c.RetentionInterval, "retention-interval", 24*time.Hour, "how often every namespace's tag retention rules run (0: only on demand, POST /api/v1/namespaces/NS/retention-runs)")
	fs.DurationVar(&c.GCUntaggedGrace, "gc-untagged-grace", 24*time.Hour, "age after which garbage collection deletes an untagged manifest (never an index child or a referrer of a kept one)")
	fs.DurationVar(&c.GCBlobGrace, "gc-blob-grace", time.Hour, "age after which garbage collection deletes a blob no manifest references (covers pushes still uploading)")
	fs.DurationVar(&c.AuditRetention, "audit-retention", 90*24*time.Hour, "how long audit log entries are kept")
	fs.BoolVar(&c.AuditPulls, "audit-pulls", false, "also keep an audit log entry for every pull (manifest GET)")
	return fs
}

// ParseConfig reads flags, environment and the config file into a Config.
func ParseConfig(name string, args []string) (*Config, error) {
	c := &Config{}
	fs := c.Flags(name)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; see berth %s -h", fs.Arg(0), name)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	apply := func(name, value string) error {
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		set[name] = true
		return nil
	}
	// Environment, for flags not given on the command line.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "BERTH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] && envErr == nil {
			if err := apply(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment %s=%q: %w", env, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if c.ConfigFile == "" {
		return c, nil
	}
	data, err := os.ReadFile(c.ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("read --config: %w", err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("parse --config %s: %w", c.ConfigFile, err)
	}
	for k, v := range file {
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			return nil, fmt.Errorf("--config %s: unknown key %q (keys are the flag names, e.g. data-dir)", c.ConfigFile, k)
		}
		if set[k] {
			continue
		}
		vals := []any{v}
		if list, ok := v.([]any); ok {
			vals = list
		}
		for _, one := range vals {
			if err := apply(k, fmt.Sprint(one)); err != nil {
				return nil, fmt.Errorf("--config %s: %w", c.ConfigFile, err)
			}
		}
	}
	return c, nil
}
