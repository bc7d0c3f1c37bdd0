package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/pipeline"
	"github.com/berth-dev/berth/policies/signature"
	"github.com/berth-dev/berth/store"
)

// ScanService is what the scan and security policy routes need beyond the store: queueing rescans and the
// policy gate's verdicts (*pipeline.Scans).
type ScanService interface {
	Rescan(ctx context.Context, repo, digest, reason string) error
	Verdict(ctx context.Context, repo, digest string) (pipeline.Verdict, error)
	// PolicyChanged makes the gate judge again with the new policy.
	PolicyChanged()
	// Signature, Accessories and Attestations read an image's signatures and attestations (SPEC §15).
	Signature(ctx context.Context, repo, digest string) (pipeline.SignatureStatus, error)
	Accessories(ctx context.Context, repo, digest string) ([]pipeline.Accessory, error)
	Attestations(ctx context.Context, repo, digest string) ([]signature.Attestation, error)
}

type vulnView struct {
	ID               string `json:"id"`
	Package          string `json:"package"`
	InstalledVersion string `json:"installed_version"`
	FixedVersion     string `json:"fixed_version"`
	Severity         string `json:"severity"`
	Title            string `json:"title"`
	Link             string `json:"link"`
}

type scanView struct {
	Status          string     `json:"status"`
	Scanner         string     `json:"scanner"`
	DBVersion       string     `json:"db_version"`
	StartedAt       *time.Time `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	Summary         vulnCounts `json:"summary"`
	Vulnerabilities []vulnView `json:"vulnerabilities"`
	// Error says why a FAILED scan failed.
	Error string `json:"error,omitempty"`
}

func countsOf(s store.ScanSummary) vulnCounts {
	return vulnCounts{High: s.High, Medium: s.Medium, Low: s.Low, Unrated: s.Unrated}
}

func viewScan(sc *store.Scan) scanView {
	if sc == nil {
		return scanView{Status: store.ScanNotScanned, Vulnerabilities: []vulnView{}}
	}
	v := scanView{Status: sc.Status, Scanner: sc.Scanner, DBVersion: sc.DBVersion, StartedAt: timeOrNil(sc.StartedAt),
		FinishedAt: timeOrNil(sc.FinishedAt), Summary: countsOf(sc.Summary), Error: sc.Error,
		Vulnerabilities: make([]vulnView, len(sc.Vulnerabilities))}
	for i, x := range sc.Vulnerabilities {
		v.Vulnerabilities[i] = vulnView(x)
	}
	return v
}

func (a *api) getScan(c *gin.Context) {
	v, ok := a.tagOr404(c)
	if !ok {
		return
	}
	sc, err := a.Store.GetScan(c.Request.Context(), v.Digest)
	if errors.Is(err, store.ErrNotFound) {
		sc, err = nil, nil
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewScan(sc))
}

// createScan queues a rescan of the tag's image; the previous result stays in force until it finishes.
func (a *api) createScan(c *gin.Context) {
	v, ok := a.tagOr404(c)
	if !ok {
		return
	}
	if a.Scans == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "scanning is not available on this instance"))
		return
	}
	ctx := c.Request.Context()
	if err := a.Scans.Rescan(ctx, v.Repository, v.Digest, "api"); err != nil {
		fail(c, err)
		return
	}
	sc, err := a.Store.GetScan(ctx, v.Digest)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, viewScan(sc))
}

// fillScans sets the scan status, counts and blocked flag of tag views. A failure leaves them as they are
// (NOT_SCANNED) and is logged: the list itself still answers.
func (a *api) fillScans(c *gin.Context, views []tagView, repo string) {
	if len(views) == 0 {
		return
	}
	ctx := c.Request.Context()
	digests := make([]string, len(views))
	for i := range views {
		digests[i] = views[i].Digest
	}
	scans, err := a.Store.ScansByDigest(ctx, digests)
	if err != nil {
		logger(c).Warn("load scans of tags", "repository", repo, "err", err)
		return
	}
	for i := range views {
		if sc := scans[views[i].Digest]; sc != nil {
			views[i].ScanStatus = sc.Status
			views[i].Vulnerabilities = countsOf(sc.Summary)
		}
		if a.Scans == nil {
			continue
		}
		verdict, err := a.Scans.Verdict(ctx, repo, views[i].Digest)
		if err != nil {
			logger(c).Warn("security policy verdict", "repository", repo, "digest", views[i].Digest, "err", err)
			continue
		}
		views[i].Blocked = verdict.Blocked
	}
}
