package console

import (
	"encoding/json"
	"time"
)

// The API's answers, as the pages read them (SPEC §11 field names).

type list[T any] struct {
	Items    []T   `json:"items"`
	Total    int64 `json:"total"`
	Page     int   `json:"page"`
	PageSize int   `json:"page_size"`
}

type namespace struct {
	Name              string    `json:"name"`
	AutoCreateRepo    bool      `json:"auto_create_repo"`
	DefaultVisibility string    `json:"default_visibility"`
	CreatedAt         time.Time `json:"created_at"`
}

type repository struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Summary     string `json:"summary"`
	Description string `json:"description"`
	Visibility  string `json:"visibility"`
	Origin      string `json:"origin"`
	// ImmutableTags is a regular expression over whole tags (SPEC §14).
	ImmutableTags string    `json:"immutable_tags"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

type retentionRule struct {
	ID                string `json:"id"`
	RepositoryPattern string `json:"repository_pattern"`
	TagPattern        string `json:"tag_pattern"`
	KeepLast          int    `json:"keep_last"`
	KeepDays          int    `json:"keep_days"`
	Enabled           bool   `json:"enabled"`
}

type retentionRun struct {
	ID         string     `json:"id"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	DryRun     bool       `json:"dry_run"`
	Trigger    string     `json:"trigger"`
	Deleted    []struct {
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		Digest     string `json:"digest"`
	} `json:"deleted"`
	DeletedCount int    `json:"deleted_count"`
	KeptCount    int    `json:"kept_count"`
	Error        string `json:"error"`
}

type counts struct {
	High    int `json:"high"`
	Medium  int `json:"medium"`
	Low     int `json:"low"`
	Unrated int `json:"unrated"`
}

type tag struct {
	Tag             string    `json:"tag"`
	Digest          string    `json:"digest"`
	ImageID         string    `json:"image_id"`
	MediaType       string    `json:"media_type"`
	Size            int64     `json:"size"`
	Platforms       []string  `json:"platforms"`
	PushedAt        time.Time `json:"pushed_at"`
	ScanStatus      string    `json:"scan_status"`
	Vulnerabilities counts    `json:"vulnerabilities"`
	Blocked         bool      `json:"blocked"`
	PullCommand     string    `json:"pull_command"`
	// One version's page only (SPEC §15).
	Signed           bool        `json:"signed"`
	SignatureKey     string      `json:"signature_key"`
	SignedByInstance bool        `json:"signed_by_instance"`
	Accessories      []accessory `json:"accessories"`
	Provenance       *provenance `json:"provenance"`
	HasSBOM          bool        `json:"has_sbom"`
}

type accessory struct {
	Type             string   `json:"type"`
	Tag              string   `json:"tag"`
	Digest           string   `json:"digest"`
	Referrer         bool     `json:"referrer"`
	Size             int64    `json:"size"`
	PredicateTypes   []string `json:"predicate_types"`
	Verified         bool     `json:"verified"`
	SignedBy         string   `json:"signed_by"`
	SignedByInstance bool     `json:"signed_by_instance"`
}

type provenance struct {
	GitURL     string     `json:"git_url"`
	Commit     string     `json:"commit"`
	Dockerfile string     `json:"dockerfile"`
	BuildRule  string     `json:"build_rule"`
	Builder    string     `json:"builder"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

type layer struct {
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
	CreatedBy string `json:"created_by"`
	Empty     bool   `json:"empty"`
}

type vuln struct {
	ID               string `json:"id"`
	Package          string `json:"package"`
	InstalledVersion string `json:"installed_version"`
	FixedVersion     string `json:"fixed_version"`
	Severity         string `json:"severity"`
	Title            string `json:"title"`
	Link             string `json:"link"`
}

type scan struct {
	Status          string     `json:"status"`
	Scanner         string     `json:"scanner"`
	DBVersion       string     `json:"db_version"`
	StartedAt       *time.Time `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	Summary         counts     `json:"summary"`
	Vulnerabilities []vuln     `json:"vulnerabilities"`
	Error           string     `json:"error"`
}

type source struct {
	Provider      string `json:"provider"`
	URL           string `json:"url"`
	Username      string `json:"username"`
	AutoBuild     bool   `json:"auto_build"`
	OverseasBuild bool   `json:"overseas_build"`
	NoCache       bool   `json:"no_cache"`
	WebhookURL    string `json:"webhook_url"`
	WebhookSecret string `json:"webhook_secret"`
	// Connected through a code account (SPEC §16): the account, the host's owner/name, and whether Berth
	// registered the webhook at the host itself.
	AccountID         string `json:"account_id"`
	Repository        string `json:"repository"`
	WebhookRegistered bool   `json:"webhook_registered"`
	WebhookError      string `json:"webhook_error"`
}

type rule struct {
	ID             string            `json:"id"`
	SourceType     string            `json:"source_type"`
	SourceRef      string            `json:"source_ref"`
	DockerfileDir  string            `json:"dockerfile_dir"`
	DockerfileName string            `json:"dockerfile_name"`
	ImageTag       string            `json:"image_tag"`
	BuildArgs      map[string]string `json:"build_args"`
	Target         string            `json:"target"`
	Platforms      []string          `json:"platforms"`
}

type stage struct {
	Name       string     `json:"name"`
	Status     string     `json:"status"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Took is how long the stage ran (so far).
func (s stage) Took() time.Duration {
	if s.StartedAt == nil {
		return 0
	}
	end := time.Now()
	if s.FinishedAt != nil {
		end = *s.FinishedAt
	}
	return end.Sub(*s.StartedAt)
}

type build struct {
	ID        string    `json:"id"`
	RuleID    string    `json:"rule_id"`
	Trigger   string    `json:"trigger"`
	Ref       string    `json:"ref"`
	Commit    string    `json:"commit"`
	ImageTag  string    `json:"image_tag"`
	Digest    string    `json:"digest"`
	Region    string    `json:"region"`
	NoCache   bool      `json:"no_cache"`
	Status    string    `json:"status"`
	Stages    []stage   `json:"stages"`
	Error     string    `json:"error"`
	CreatedAt time.Time `json:"created_at"`
}

// Final reports whether the build has ended.
func (b build) Final() bool {
	switch b.Status {
	case "SUCCESS", "FAILED", "CANCELED", "BLOCKED":
		return true
	}
	return false
}

type trigger struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	URL        string   `json:"url"`
	FilterType string   `json:"filter_type"`
	Expression string   `json:"expression"`
	Tags       []string `json:"tags"`
	Enabled    bool     `json:"enabled"`
	Secret     string   `json:"secret"`
}

type triggerRecord struct {
	ID              string    `json:"id"`
	Time            time.Time `json:"time"`
	Tag             string    `json:"tag"`
	Digest          string    `json:"digest"`
	Status          string    `json:"status"`
	Reason          string    `json:"reason"`
	StatusCode      int       `json:"status_code"`
	LatencyMS       int64     `json:"latency_ms"`
	Attempts        int       `json:"attempts"`
	RequestBody     string    `json:"request_body"`
	ResponseExcerpt string    `json:"response_excerpt"`
}

type allowEntry struct {
	ID        string     `json:"id"`
	ExpiresAt *time.Time `json:"expires_at"`
}

type securityPolicy struct {
	BlockSeverity  string       `json:"block_severity"`
	OnlyFixable    bool         `json:"only_fixable"`
	Allowlist      []allowEntry `json:"allowlist"`
	BlockUnscanned bool         `json:"block_unscanned"`
	// RequireSignature and TrustedKeys: SPEC §15's signature requirement.
	RequireSignature bool     `json:"require_signature"`
	TrustedKeys      []string `json:"trusted_keys"`
	Override         bool     `json:"override,omitempty"`
}

type user struct {
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name"`
	Enabled     bool      `json:"enabled"`
	Admin       bool      `json:"admin"`
	Policies    []string  `json:"policies"`
	CreatedAt   time.Time `json:"created_at"`
}

type accessKey struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Secret    string    `json:"secret"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
}

type policy struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Document    json.RawMessage `json:"document"`
	System      bool            `json:"system"`
}

type tempToken struct {
	Username  string    `json:"username"`
	Password  string    `json:"password"`
	ExpiresAt time.Time `json:"expires_at"`
}

// codeAccount is a bound Git host account (SPEC §16); its token is write-only.
type codeAccount struct {
	ID        string    `json:"id"`
	Provider  string    `json:"provider"`
	BaseURL   string    `json:"base_url"`
	Username  string    `json:"username"`
	Login     string    `json:"login"` // whom the host says the token belongs to
	CreatedAt time.Time `json:"created_at"`
}

// hostRepository is a repository a code account's token sees.
type hostRepository struct {
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	DefaultBranch string `json:"default_branch"`
	Private       bool   `json:"private"`
}
