package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
)

// Stable error codes of the REST API. Clients branch on them; never rename one.
const (
	CodeInvalidArgument        = "INVALID_ARGUMENT"
	CodeInvalidName            = "INVALID_NAME"
	CodeInvalidJSON            = "INVALID_JSON"
	CodeAlreadyExists          = "ALREADY_EXISTS"
	CodeNotFound               = "NOT_FOUND"
	CodeNamespaceLimitExceeded = "NAMESPACE_LIMIT_EXCEEDED"
	CodeNamespaceNotEmpty      = "NAMESPACE_NOT_EMPTY"
	CodeUnauthorized           = "UNAUTHORIZED"
	CodeForbidden              = "FORBIDDEN"
	CodeBodyTooLarge           = "BODY_TOO_LARGE"
	CodeUnsupportedMediaType   = "UNSUPPORTED_MEDIA_TYPE"
	CodeTooManyRequests        = "TOO_MANY_REQUESTS"
	CodeConflict               = "CONFLICT"
	CodeTagImmutable           = "TAG_IMMUTABLE"
	CodeUnavailable            = "UNAVAILABLE"
	CodeInternal               = "INTERNAL"
)

// apiError is the one error shape of the API: {"code","message","request_id"}.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, CodeInvalidArgument, format, args...)
}

func notFound(format string, args ...any) *apiError {
	return errf(http.StatusNotFound, CodeNotFound, format, args...)
}

// fail writes err in the API's error shape and stops the chain. Errors that are not *apiError are logged and
// answered as INTERNAL without their text (it may hold details a client should not see).
func fail(c *gin.Context, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		switch {
		case errors.Is(err, store.ErrNotFound):
			ae = notFound("not found")
		case errors.Is(err, c.Request.Context().Err()) && c.Request.Context().Err() != nil:
			ae = errf(499, CodeUnavailable, "request canceled")
		default:
			logger(c).Error("request failed", "err", err, "path", c.FullPath())
			ae = errf(http.StatusInternalServerError, CodeInternal,
				"internal error; retry, and report the request_id to the operator if it persists")
		}
	}
	c.AbortWithStatusJSON(ae.Status, gin.H{"code": ae.Code, "message": ae.Message, "request_id": requestID(c)})
}
