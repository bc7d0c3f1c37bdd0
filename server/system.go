package server

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// ScannerStatus is GET /api/v1/system/scanner: the scanner, its vulnerability DB and the DB's last download.
type ScannerStatus struct {
	// State is ready, no_scanner, no_db or downloading; Reason says what is missing and how to fix it.
	State          string     `json:"state"`
	Reason         string     `json:"reason,omitempty"`
	Scanner        string     `json:"scanner"` // the berth-scanner binary or --scanner-addr; "" when none
	DBDir          string     `json:"db_dir"`
	DBRepository   string     `json:"db_repository"` // --scan-db-repository; "" when downloads are off
	DBVersion      string     `json:"db_version"`
	DBUpdatedAt    *time.Time `json:"db_updated_at"`
	LastDownloadAt *time.Time `json:"last_download_at"` // the last download or check of the repository
	LastError      string     `json:"last_error"`       // its error; "" when it went well
}

// ScannerStatusService reports the scanner's state.
type ScannerStatusService interface {
	ScannerStatus(ctx context.Context) ScannerStatus
}

func (a *api) getSystemScanner(c *gin.Context) {
	if a.Scanner == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "this server runs no scanner"))
		return
	}
	c.JSON(http.StatusOK, a.Scanner.ScannerStatus(c.Request.Context()))
}

// getSigningKey answers the public half of the instance's image signing key in PEM, the file `cosign verify
// --key` reads. Anyone may read it: it is what verifies Berth's signatures.
func (a *api) getSigningKey(c *gin.Context) {
	if a.SigningKey == nil {
		fail(c, errf(http.StatusServiceUnavailable, CodeUnavailable, "this server has no image signing key"))
		return
	}
	pemBytes, err := a.SigningKey.PublicPEM()
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Content-Disposition", `inline; filename="berth.pub"`)
	c.Data(http.StatusOK, "application/x-pem-file", pemBytes)
}
