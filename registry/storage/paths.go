package storage

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/registry/reference"
)

// Storage layout. Every path is built here, from validated values only:
//
//	/blobs/<alg>/<hex[0:2]>/<hex>/data                                  content-addressed blob (layers, configs, manifests)
//	/blobs/<alg>/<hex[0:2]>/<hex>/_repositories/<name>/link             hint: a repository that linked the blob
//	/repositories/<name>/_layers/<alg>/<hex>/link                       the repository may serve this blob
//	/repositories/<name>/_manifests/revisions/<alg>/<hex>/link          manifest in the repository; content: its media type
//	/repositories/<name>/_manifests/tags/<tag>/current/link             tag; content: manifest digest
//	/repositories/<name>/_referrers/<alg>/<hex>/<alg>/<hex>/link        subject -> referrer; content: referrer descriptor JSON
//	/uploads/<id>/info                                                  upload session: repository and start time (JSON)
//	/uploads/<id>/data                                                  bytes received so far
//	/uploads/<id>/hashstates/<alg>/<offset>                             marshalled hash state at offset
//
// Repository name components match [a-z0-9]+(sep[a-z0-9]+)*, so they can
// never collide with the "_"-prefixed internal directories.
const (
	blobsRoot        = "/blobs"
	repositoriesRoot = "/repositories"
	uploadsRoot      = "/uploads"
)

// pathSpec is one kind of storage path.
type pathSpec interface{ pathSpec() }

type blobDataPathSpec struct{ digest reference.Digest }
type blobRepositoriesPathSpec struct{ digest reference.Digest }
type blobRepositoryLinkPathSpec struct {
	digest reference.Digest
	name   string
}
type blobsAlgPathSpec struct{} // /blobs
type repositoryPathSpec struct{ name string }
type layerLinkPathSpec struct {
	name   string
	digest reference.Digest
}
type layersPathSpec struct{ name string }
type manifestRevisionLinkPathSpec struct {
	name   string
	digest reference.Digest
}
type manifestRevisionsPathSpec struct{ name string }
type manifestTagsPathSpec struct{ name string }
type manifestTagPathSpec struct{ name, tag string }
type manifestTagCurrentPathSpec struct{ name, tag string }
type referrersSubjectPathSpec struct {
	name    string
	subject reference.Digest
}
type referrerLinkPathSpec struct {
	name     string
	subject  reference.Digest
	referrer reference.Digest
}
type uploadPathSpec struct{ id string }
type uploadInfoPathSpec struct{ id string }
type uploadDataPathSpec struct{ id string }
type uploadHashStatePathSpec struct {
	id     string
	alg    reference.Algorithm
	offset int64
}
type uploadHashStatesPathSpec struct {
	id  string
	alg reference.Algorithm
}

func (blobDataPathSpec) pathSpec()             {}
func (blobRepositoriesPathSpec) pathSpec()     {}
func (blobRepositoryLinkPathSpec) pathSpec()   {}
func (blobsAlgPathSpec) pathSpec()             {}
func (repositoryPathSpec) pathSpec()           {}
func (layerLinkPathSpec) pathSpec()            {}
func (layersPathSpec) pathSpec()               {}
func (manifestRevisionLinkPathSpec) pathSpec() {}
func (manifestRevisionsPathSpec) pathSpec()    {}
func (manifestTagsPathSpec) pathSpec()         {}
func (manifestTagPathSpec) pathSpec()          {}
func (manifestTagCurrentPathSpec) pathSpec()   {}
func (referrersSubjectPathSpec) pathSpec()     {}
func (referrerLinkPathSpec) pathSpec()         {}
func (uploadPathSpec) pathSpec()               {}
func (uploadInfoPathSpec) pathSpec()           {}
func (uploadDataPathSpec) pathSpec()           {}
func (uploadHashStatePathSpec) pathSpec()      {}
func (uploadHashStatesPathSpec) pathSpec()     {}

// pathFor maps a spec to its path, re-checking every user-derived part.
func pathFor(spec pathSpec) (string, error) {
	digestParts := func(d reference.Digest) (string, error) {
		if d.IsZero() {
			return "", fmt.Errorf("storage: empty digest")
		}
		return string(d.Algorithm()) + "/" + d.Hex(), nil
	}
	checkName := func(n string) error {
		if !reference.ValidName(n) {
			return fmt.Errorf("storage: invalid repository name %q", n)
		}
		return nil
	}
	checkTag := func(t string) error {
		if !reference.ValidTag(t) {
			return fmt.Errorf("storage: invalid tag %q", t)
		}
		return nil
	}
	checkID := func(id string) error {
		if !ValidUploadID(id) {
			return fmt.Errorf("storage: invalid upload id %q", id)
		}
		return nil
	}
	var b strings.Builder
	switch s := spec.(type) {
	case blobsAlgPathSpec:
		return blobsRoot, nil
	case blobDataPathSpec:
		if s.digest.IsZero() {
			return "", fmt.Errorf("storage: empty digest")
		}
		hx := s.digest.Hex()
		return blobsRoot + "/" + string(s.digest.Algorithm()) + "/" + hx[:2] + "/" + hx + "/data", nil
	case blobRepositoriesPathSpec:
		if s.digest.IsZero() {
			return "", fmt.Errorf("storage: empty digest")
		}
		hx := s.digest.Hex()
		return blobsRoot + "/" + string(s.digest.Algorithm()) + "/" + hx[:2] + "/" + hx + "/_repositories", nil
	case blobRepositoryLinkPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		if s.digest.IsZero() {
			return "", fmt.Errorf("storage: empty digest")
		}
		hx := s.digest.Hex()
		return blobsRoot + "/" + string(s.digest.Algorithm()) + "/" + hx[:2] + "/" + hx + "/_repositories/" + s.name + "/link", nil
	case repositoryPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name, nil
	case layersPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name + "/_layers", nil
	case layerLinkPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		dp, err := digestParts(s.digest)
		if err != nil {
			return "", err
		}
		b.Grow(64 + len(s.name) + len(dp))
		b.WriteString(repositoriesRoot + "/")
		b.WriteString(s.name)
		b.WriteString("/_layers/")
		b.WriteString(dp)
		b.WriteString("/link")
		return b.String(), nil
	case manifestRevisionsPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name + "/_manifests/revisions", nil
	case manifestRevisionLinkPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		dp, err := digestParts(s.digest)
		if err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name + "/_manifests/revisions/" + dp + "/link", nil
	case manifestTagsPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name + "/_manifests/tags", nil
	case manifestTagPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		if err := checkTag(s.tag); err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name + "/_manifests/tags/" + s.tag, nil
	case manifestTagCurrentPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		if err := checkTag(s.tag); err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name + "/_manifests/tags/" + s.tag + "/current/link", nil
	case referrersSubjectPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		dp, err := digestParts(s.subject)
		if err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name + "/_referrers/" + dp, nil
	case referrerLinkPathSpec:
		if err := checkName(s.name); err != nil {
			return "", err
		}
		sp, err := digestParts(s.subject)
		if err != nil {
			return "", err
		}
		rp, err := digestParts(s.referrer)
		if err != nil {
			return "", err
		}
		return repositoriesRoot + "/" + s.name + "/_referrers/" + sp + "/" + rp + "/link", nil
	case uploadPathSpec:
		if err := checkID(s.id); err != nil {
			return "", err
		}
		return uploadsRoot + "/" + s.id, nil
	case uploadInfoPathSpec:
		if err := checkID(s.id); err != nil {
			return "", err
		}
		return uploadsRoot + "/" + s.id + "/info", nil
	case uploadDataPathSpec:
		if err := checkID(s.id); err != nil {
			return "", err
		}
		return uploadsRoot + "/" + s.id + "/data", nil
	case uploadHashStatesPathSpec:
		if err := checkID(s.id); err != nil {
			return "", err
		}
		if !s.alg.Available() {
			return "", fmt.Errorf("storage: bad algorithm %q", s.alg)
		}
		return uploadsRoot + "/" + s.id + "/hashstates/" + string(s.alg), nil
	case uploadHashStatePathSpec:
		if err := checkID(s.id); err != nil {
			return "", err
		}
		if !s.alg.Available() || s.offset < 0 {
			return "", fmt.Errorf("storage: bad hash state spec")
		}
		return uploadsRoot + "/" + s.id + "/hashstates/" + string(s.alg) + "/" + strconv.FormatInt(s.offset, 10), nil
	}
	return "", fmt.Errorf("storage: unknown path spec %T", spec)
}

// ValidUploadID reports whether id looks like an upload id we issued
// (a lowercase UUID).
func ValidUploadID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
