package store

import (
	"context"
	"time"
)

// Store is Berth's state: every typed query the rest of Berth makes. Two backends implement it, passing one
// test suite (storetest): Mongo, on MongoDB (or FerretDB, for several replicas), and sqlite.DB, the embedded
// default, with a table and indexes per collection. Every query a page or an API call makes is served by an
// index on both, and totals of the long lists (a repository's versions and builds, a trigger's records) come
// from counters (SQLite) or indexed counts (MongoDB), so a page costs the same at 1,000 items as at 100,000.
type Store interface {
	// The main account and its users
	EnsureInstance(ctx context.Context) (inst *Instance, created bool, err error)
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, name string) (*User, error)
	ListUsers(ctx context.Context, p Page) ([]User, int64, error)
	ChangeUser(ctx context.Context, name string, u UserUpdate) (*User, error)
	AttachPolicy(ctx context.Context, user, policy string) (*User, error)
	DetachPolicy(ctx context.Context, user, policy string) (*User, error)
	SetUserPolicies(ctx context.Context, name string, policies []string) (*User, error)
	DeleteUser(ctx context.Context, name string) error

	// Access keys and policies
	CreateAccessKey(ctx context.Context, k *AccessKey) error
	GetAccessKey(ctx context.Context, id string) (*AccessKey, error)
	ListAccessKeys(ctx context.Context, user string, p Page) ([]AccessKey, int64, error)
	SetAccessKeyEnabled(ctx context.Context, user, id string, enabled bool) error
	DeleteAccessKey(ctx context.Context, user, id string) error
	CreatePolicy(ctx context.Context, p *Policy) error
	GetPolicy(ctx context.Context, name string) (*Policy, error)
	ListPolicies(ctx context.Context, p Page) ([]Policy, int64, error)
	ListPoliciesFrom(ctx context.Context, skip, limit int) ([]Policy, int64, error)
	UpdatePolicy(ctx context.Context, name, description, document string) (*Policy, error)
	DeletePolicy(ctx context.Context, name string) error

	// Sealed instance keys
	InsertInstanceKey(ctx context.Context, id, sealed string) error
	GetInstanceKey(ctx context.Context, id string) (*InstanceKey, error)

	// Console sessions
	CreateSession(ctx context.Context, sess *Session) error
	GetSession(ctx context.Context, id string) (*Session, error)
	TouchSession(ctx context.Context, id string, t time.Time) error
	DeleteSession(ctx context.Context, id string) error
	DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error)

	// Namespaces (SPEC §1)
	CreateNamespace(ctx context.Context, ns *Namespace, limit int) error
	GetNamespace(ctx context.Context, name string) (*Namespace, error)
	ListNamespaces(ctx context.Context, accountID string, p Page) ([]Namespace, int64, error)
	UpdateNamespace(ctx context.Context, name string, u NamespaceUpdate) (*Namespace, error)
	DeleteNamespace(ctx context.Context, name string, force bool) ([]string, error)

	// Repositories (SPEC §2)
	CreateRepository(ctx context.Context, r *Repository) error
	GetRepository(ctx context.Context, namespace, name string) (*Repository, error)
	ListRepositories(ctx context.Context, accountID, namespace string, p Page) ([]Repository, int64, error)
	SearchRepositories(ctx context.Context, accountID, namespace, query string, p Page) ([]Repository, int64, error)
	UpdateRepository(ctx context.Context, namespace, name string, u RepositoryUpdate) (*Repository, error)
	DeleteRepository(ctx context.Context, namespace, name string) error

	// Image versions
	PutImageVersion(ctx context.Context, v *ImageVersion) error
	GetImageVersion(ctx context.Context, repo, tag string) (*ImageVersion, error)
	ListImageVersions(ctx context.Context, repo string, p Page) ([]ImageVersion, int64, error)
	DeleteImageVersion(ctx context.Context, repo, tag string) error
	DeleteImageVersionsByDigest(ctx context.Context, repo, digest string) error
	// ImageVersionsByDigest returns up to limit versions of repo that point at digest.
	ImageVersionsByDigest(ctx context.Context, repo, digest string, limit int) ([]ImageVersion, error)

	// Scans, security policies and the scan DB version (SPEC §6, §7)
	GetScan(ctx context.Context, digest string) (*Scan, error)
	ScansByDigest(ctx context.Context, digests []string) (map[string]*Scan, error)
	StartScan(ctx context.Context, digest, repo string, at time.Time) error
	FinishScan(ctx context.Context, digest string, r ScanResult) (*Scan, error)
	AddScanWaiter(ctx context.Context, digest string, w ScanWaiter) (*Scan, error)
	UnfinishedScans(ctx context.Context, limit int) ([]Scan, error)
	RemoveScanWaiter(ctx context.Context, digest string, w ScanWaiter) error
	GetSecurityPolicy(ctx context.Context, id string) (*SecurityPolicy, error)
	PutSecurityPolicy(ctx context.Context, p *SecurityPolicy) error
	DeleteSecurityPolicy(ctx context.Context, id string) error
	RecentImageVersions(ctx context.Context, since time.Time, limit int) ([]ImageVersion, error)
	ScanDBVersion(ctx context.Context) (string, error)
	SetScanDBVersion(ctx context.Context, version string) error

	// Code sources and webhook deliveries (SPEC §4)
	PutSource(ctx context.Context, src *Source) (created bool, err error)
	GetSource(ctx context.Context, repo string) (*Source, error)
	SourceByHook(ctx context.Context, hookID string) (*Source, error)
	DeleteSource(ctx context.Context, repo string) error
	RecordDelivery(ctx context.Context, repo, key string) error
	TakeOverDelivery(ctx context.Context, repo, key string, staleAfter time.Duration) (bool, error)
	ForgetDelivery(ctx context.Context, repo, key string) error
	DeleteDeliveriesBefore(ctx context.Context, t time.Time) (int64, error)

	// Code accounts on Git hosts (SPEC §16)
	CreateCodeAccount(ctx context.Context, a *CodeAccount) error
	GetCodeAccount(ctx context.Context, id string) (*CodeAccount, error)
	ListCodeAccounts(ctx context.Context, accountID string, p Page) ([]CodeAccount, int64, error)
	DeleteCodeAccount(ctx context.Context, id string) error

	// Build rules (SPEC §5)
	CreateBuildRule(ctx context.Context, r *BuildRule) error
	GetBuildRule(ctx context.Context, repo, id string) (*BuildRule, error)
	ListBuildRules(ctx context.Context, repo string, p Page) ([]BuildRule, int64, error)
	AllBuildRules(ctx context.Context, repo string) ([]BuildRule, error)
	UpdateBuildRule(ctx context.Context, repo, id string, change func(*BuildRule) error) (*BuildRule, error)
	DeleteBuildRule(ctx context.Context, repo, id string) error

	// Builds and their logs (SPEC §5)
	CreateBuild(ctx context.Context, b *Build) error
	GetBuild(ctx context.Context, repo, id string) (*Build, error)
	BuildByID(ctx context.Context, id string) (*Build, error)
	ListBuilds(ctx context.Context, repo string, p Page) ([]Build, int64, error)
	BuildsInStatus(ctx context.Context, statuses []string, after string, limit int) ([]Build, error)
	UnqueuedBuilds(ctx context.Context, limit int) ([]Build, error)
	UpdateBuild(ctx context.Context, id string, change func(*Build) error) (*Build, error)
	PutLogChunk(ctx context.Context, c *LogChunk) error
	GetLogChunk(ctx context.Context, build string, seq int) (*LogChunk, error)

	// Triggers and their records (SPEC §8)
	CreateTrigger(ctx context.Context, t *Trigger) error
	GetTrigger(ctx context.Context, repo, id string) (*Trigger, error)
	ListTriggers(ctx context.Context, repo string, p Page) ([]Trigger, int64, error)
	EnabledTriggers(ctx context.Context, repo string) ([]Trigger, error)
	UpdateTrigger(ctx context.Context, repo, id string, change func(*Trigger) error) (*Trigger, error)
	DeleteTrigger(ctx context.Context, repo, id string) error
	PutTriggerRecord(ctx context.Context, r *TriggerRecord) error
	GetTriggerRecord(ctx context.Context, id string) (*TriggerRecord, error)
	ListTriggerRecords(ctx context.Context, triggerID string, p Page) ([]TriggerRecord, int64, error)
	DeleteTriggerRecordsBefore(ctx context.Context, cutoff time.Time) (int64, error)

	// Garbage collection runs (SPEC §13)
	CreateGCRun(ctx context.Context, r *GCRun) error
	FinishGCRun(ctx context.Context, r *GCRun) error
	GetGCRun(ctx context.Context, id string) (*GCRun, error)
	ListGCRuns(ctx context.Context, p Page) ([]GCRun, int64, error)
	LastGCRun(ctx context.Context) (*GCRun, error)
	EndUnfinishedGCRuns(ctx context.Context, id, message string) (int64, error)

	// Retention rules and runs of a namespace (SPEC §14)
	GetRetentionRules(ctx context.Context, namespace string) ([]RetentionRule, error)
	UpdateRetentionRules(ctx context.Context, namespace string, change func([]RetentionRule) ([]RetentionRule, error)) ([]RetentionRule, error)
	NamespacesWithRetentionRules(ctx context.Context) ([]string, error)
	CreateRetentionRun(ctx context.Context, r *RetentionRun) error
	FinishRetentionRun(ctx context.Context, r *RetentionRun) error
	GetRetentionRun(ctx context.Context, namespace, id string) (*RetentionRun, error)
	ListRetentionRuns(ctx context.Context, namespace string, p Page) ([]RetentionRun, int64, error)
	EndUnfinishedRetentionRuns(ctx context.Context, id, message string) (int64, error)
	// The audit log (SPEC §14): entries are added in batches and never changed; the retention sweep removes
	// the old ones.
	AddAuditEntries(ctx context.Context, entries []AuditEntry) error
	ListAuditEntries(ctx context.Context, f AuditFilter, p Page) ([]AuditEntry, int64, error)
	DeleteAuditEntriesBefore(ctx context.Context, cutoff time.Time) (int64, error)

	// The connection
	Close(ctx context.Context) error
	Ping(ctx context.Context) error
}

var _ Store = (*Mongo)(nil)
