package outbound

import (
	"bytes"
	"encoding/json"
	"time"
)

// TimeLayout is the format of every time in a payload (SPEC §8), in the
// instance's time zone.
const TimeLayout = "2006-01-02 15:04:05"

// Repository types and the fixed certification values of a payload.
const (
	RepoTypePublic  = "PUBLIC"
	RepoTypePrivate = "PRIVATE"
	NotCertified    = "NO_CERTIFIED"
)

// Payload is the JSON body of a trigger delivery, field for field as SPEC §8
// (and ACR) define it.
type Payload struct {
	PushData   PushData `json:"push_data"`
	Repository RepoInfo `json:"repository"`
}

// PushData describes the pushed image version.
type PushData struct {
	Digest   string `json:"digest"`
	PushedAt string `json:"pushed_at"`
	Tag      string `json:"tag"`
}

// RepoInfo describes the repository the version was pushed to.
type RepoInfo struct {
	DateCreated            string `json:"date_created"`
	Name                   string `json:"name"`
	Namespace              string `json:"namespace"`
	Region                 string `json:"region"`
	RepoAuthenticationType string `json:"repo_authentication_type"`
	RepoFullName           string `json:"repo_full_name"`
	RepoOriginType         string `json:"repo_origin_type"`
	RepoType               string `json:"repo_type"`
}

// Repo is what NewPayload needs to know about a repository.
type Repo struct {
	Namespace string
	Name      string
	Region    string
	// Public repositories are reported as PUBLIC, all others as PRIVATE.
	Public    bool
	CreatedAt time.Time
}

// NewPayload builds the payload for an image version pushed to repo. Times
// are formatted with TimeLayout in loc (the instance's time zone; UTC when
// nil).
func NewPayload(repo Repo, digest, tag string, pushedAt time.Time, loc *time.Location) Payload {
	if loc == nil {
		loc = time.UTC
	}
	typ := RepoTypePrivate
	if repo.Public {
		typ = RepoTypePublic
	}
	return Payload{
		PushData: PushData{
			Digest:   digest,
			PushedAt: pushedAt.In(loc).Format(TimeLayout),
			Tag:      tag,
		},
		Repository: RepoInfo{
			DateCreated:            repo.CreatedAt.In(loc).Format(TimeLayout),
			Name:                   repo.Name,
			Namespace:              repo.Namespace,
			Region:                 repo.Region,
			RepoAuthenticationType: NotCertified,
			RepoFullName:           repo.Namespace + "/" + repo.Name,
			RepoOriginType:         NotCertified,
			RepoType:               typ,
		},
	}
}

// Marshal returns the body to send: compact JSON, no HTML escaping, no
// trailing newline. The same bytes are signed and stored in the history.
func (p Payload) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
