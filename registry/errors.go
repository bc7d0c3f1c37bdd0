package registry

import (
	"encoding/json"
	"errors"
	"net/http"
)

// OCI distribution error codes.
const (
	CodeBlobUnknown         = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       = "DIGEST_INVALID"
	CodeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     = "MANIFEST_INVALID"
	CodeManifestUnknown     = "MANIFEST_UNKNOWN"
	CodeNameInvalid         = "NAME_INVALID"
	CodeNameUnknown         = "NAME_UNKNOWN"
	CodeSizeInvalid         = "SIZE_INVALID"
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeDenied              = "DENIED"
	CodeUnsupported         = "UNSUPPORTED"
	CodeTooManyRequests     = "TOOMANYREQUESTS"
	CodeRangeInvalid        = "RANGE_INVALID"
	CodeUnknown             = "UNKNOWN"
)

// Error is a registry error as the OCI distribution spec renders it:
// {"errors":[{"code","message","detail"}]} with an HTTP status.
//
// errors.Is matches two *Error values with the same Code, so callers can test
// errors.Is(err, registry.ErrUnauthorized) or
// errors.Is(err, &registry.Error{Code: registry.CodeManifestUnknown}).
type Error struct {
	Code    string
	Message string
	Detail  any
	Status  int
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Is matches errors by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// WithDetail returns a copy of e carrying detail.
func (e *Error) WithDetail(detail any) *Error {
	c := *e
	c.Detail = detail
	return &c
}

func newErr(code string, status int, msg string) *Error {
	return &Error{Code: code, Message: msg, Status: status}
}

// ErrUnauthorized is what Authorizer.Authenticate returns for bad credentials.
var ErrUnauthorized = &Error{Code: CodeUnauthorized, Message: "authentication required", Status: http.StatusUnauthorized}

// Constructors for every code.
func ErrBlobUnknown(msg string) *Error { return newErr(CodeBlobUnknown, http.StatusNotFound, msg) }
func ErrBlobUploadInvalid(msg string) *Error {
	return newErr(CodeBlobUploadInvalid, http.StatusBadRequest, msg)
}
func ErrBlobUploadUnknown(msg string) *Error {
	return newErr(CodeBlobUploadUnknown, http.StatusNotFound, msg)
}
func ErrDigestInvalid(msg string) *Error {
	return newErr(CodeDigestInvalid, http.StatusBadRequest, msg)
}
func ErrManifestBlobUnknown(msg string) *Error {
	return newErr(CodeManifestBlobUnknown, http.StatusBadRequest, msg)
}
func ErrManifestInvalid(msg string) *Error {
	return newErr(CodeManifestInvalid, http.StatusBadRequest, msg)
}
func ErrManifestUnknown(msg string) *Error {
	return newErr(CodeManifestUnknown, http.StatusNotFound, msg)
}
func ErrNameInvalid(msg string) *Error { return newErr(CodeNameInvalid, http.StatusBadRequest, msg) }
func ErrNameUnknown(msg string) *Error { return newErr(CodeNameUnknown, http.StatusNotFound, msg) }
func ErrSizeInvalid(msg string) *Error { return newErr(CodeSizeInvalid, http.StatusBadRequest, msg) }
func ErrDenied(msg string) *Error      { return newErr(CodeDenied, http.StatusForbidden, msg) }
func ErrUnsupported(msg string) *Error {
	return newErr(CodeUnsupported, http.StatusMethodNotAllowed, msg)
}
func ErrTooManyRequests(msg string) *Error {
	return newErr(CodeTooManyRequests, http.StatusTooManyRequests, msg)
}

// ErrRangeInvalid answers 416 (an upload chunk out of order, or a bad Range).
func ErrRangeInvalid(msg string) *Error {
	return newErr(CodeRangeInvalid, http.StatusRequestedRangeNotSatisfiable, msg)
}

// ErrorCode returns the registry code of err, or "" when it is not an *Error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

type errorBody struct {
	Errors []errorJSON `json:"errors"`
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// toError maps any error to an *Error; unknown errors become 500 UNKNOWN with
// a generic message (the cause goes to the log, not the client).
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Status == 0 {
			c := *e
			c.Status = http.StatusInternalServerError
			return &c
		}
		return e
	}
	return &Error{Code: CodeUnknown, Message: "internal error", Status: http.StatusInternalServerError}
}

// writeError renders err.
func writeError(w http.ResponseWriter, req *http.Request, err *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(err.Status)
	if req != nil && req.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(errorBody{Errors: []errorJSON{{Code: err.Code, Message: err.Message, Detail: err.Detail}}})
}
