package master

import (
	"errors"
	"fmt"
)

// Code classifies why the master refused a scheduler call, so that each
// transport (corral's gRPC API, the Mesos v1 HTTP API) can answer in its
// own terms: a gRPC status code, an HTTP status or an asynchronous event.
type Code int

const (
	// CodeInvalid: the call is malformed or inconsistent.
	CodeInvalid Code = iota + 1
	// CodeUnknownFramework: no framework with that ID is registered.
	CodeUnknownFramework
	// CodeNotSubscribed: the framework has no open subscription.
	CodeNotSubscribed
	// CodeStaleStream: the call names a stream that is not the framework's
	// current one (it failed over, or the ID is wrong).
	CodeStaleStream
	// CodeInvalidOffers: the offers of an accept cannot be used together
	// or at all (unknown, another framework's, different agents or roles,
	// their agent gone).
	CodeInvalidOffers
	// CodeNotFound: an offer, task or agent the call names is unknown.
	CodeNotFound
	// CodeForbidden: the call names another framework's offer.
	CodeForbidden
	// CodePrecondition: the call is valid but the state does not allow it
	// now (an agent disconnected, a role suppressed).
	CodePrecondition
	// CodeUnavailable: an agent needed for the call is disconnected; retry.
	CodeUnavailable
	// CodeRateLimited: the framework exceeded its calls per second, or its
	// principal its subscriptions; retry later (gRPC ResourceExhausted,
	// Mesos answers 429).
	CodeRateLimited
	// CodeDenied: the ACLs do not allow the caller's principal the action
	// (PermissionDenied / 403; the message names principal, action and
	// object).
	CodeDenied
)

// Error is a refused scheduler call.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func callErr(code Code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error { return callErr(CodeInvalid, format, args...) }

// ErrorCode returns the Code of a refused call, or 0 for other errors.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
