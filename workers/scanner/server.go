package scanner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// APIError is the body of every non-2xx answer: {"code": "...", "message": "..."}.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of the HTTP API.
const (
	CodeInvalidRequest   = "INVALID_REQUEST"       // 400
	CodeRegistryDenied   = "REGISTRY_UNAUTHORIZED" // 401: the registry refused the credentials in the request
	CodeImageNotFound    = "IMAGE_NOT_FOUND"       // 404
	CodeRegistryError    = "REGISTRY_ERROR"        // 502
	CodeNoVulnDB         = "NO_VULN_DB"            // 503
	CodeScanTimeout      = "SCAN_TIMEOUT"          // 504
	CodeScanFailed       = "SCAN_FAILED"           // 500
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"    // 405
)

// maxRequestBytes bounds a POST /scan body; a request is an image reference and credentials.
const maxRequestBytes = 64 << 10

// HandlerOptions tune NewHandler.
type HandlerOptions struct {
	// ScanTimeout bounds one scan, waiting for a free slot included. Default 10 minutes.
	ScanTimeout time.Duration
	Logger      *slog.Logger
}

// NewHandler serves the scanner's HTTP API:
//
//	POST /scan   {"image","username","password","insecure"} → 200 Report
//	GET  /healthz → 200 {"status":"ok"}
//	GET  /db     → 200 DBInfo, or 503 {"code":"NO_VULN_DB",…}
func NewHandler(s *Scanner, opts HandlerOptions) http.Handler {
	if opts.ScanTimeout <= 0 {
		opts.ScanTimeout = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &handler{s: s, opts: opts, log: opts.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /scan", h.scan)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /db", h.db)
	for _, p := range []string{"/scan", "/healthz", "/db"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, r.Method+" is not allowed on "+p)
		})
	}
	return mux
}

type handler struct {
	s    *Scanner
	opts HandlerOptions
	log  *slog.Logger
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handler) db(w http.ResponseWriter, _ *http.Request) {
	info, err := h.s.DBInfo()
	if err != nil {
		h.writeScanError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (h *handler) scan(w http.ResponseWriter, r *http.Request) {
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "request body must be a JSON object "+
			`{"image", "username", "password", "insecure", "sbom"}: `+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.ScanTimeout)
	defer cancel()

	start := time.Now()
	rep, err := h.s.Scan(ctx, req)
	if err != nil {
		h.log.Warn("scan failed", "image", req.Image, "duration", time.Since(start).Round(time.Millisecond), "err", err)
		h.writeScanError(w, err)
		return
	}
	h.log.Info("scanned", "image", req.Image, "os", rep.OS, "vulnerabilities", len(rep.Vulnerabilities),
		"duration", time.Since(start).Round(time.Millisecond))
	writeJSON(w, http.StatusOK, rep)
}

func (h *handler) writeScanError(w http.ResponseWriter, err error) {
	status, code := errorStatus(err)
	writeError(w, status, code, err.Error())
}

// errorStatus maps a Scan or DBInfo error to its HTTP status and API code.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, ErrInvalidRequest):
		return http.StatusBadRequest, CodeInvalidRequest
	case errors.Is(err, ErrNoDB):
		return http.StatusServiceUnavailable, CodeNoVulnDB
	case errors.Is(err, ErrImageNotFound):
		return http.StatusNotFound, CodeImageNotFound
	case errors.Is(err, ErrRegistryDenied):
		return http.StatusUnauthorized, CodeRegistryDenied
	case errors.Is(err, ErrRegistry):
		return http.StatusBadGateway, CodeRegistryError
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, CodeScanTimeout
	default:
		return http.StatusInternalServerError, CodeScanFailed
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, APIError{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = fmt.Appendf(nil, `{"code":%q,"message":%q}`, CodeScanFailed, "encode response: "+err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
