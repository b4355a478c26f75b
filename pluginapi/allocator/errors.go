package allocator

import (
	"errors"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// versionGapReason and errorDomain identify a VersionGapError in a gRPC
// status's ErrorInfo detail.
const (
	versionGapReason = "VERSION_GAP"
	errorDomain      = "allocator.corral"
)

// versionGapToStatus encodes a *VersionGapError as FAILED_PRECONDITION with
// the versions in an ErrorInfo, so the host gets the typed error back.
func versionGapToStatus(gap *VersionGapError) error {
	st := status.New(codes.FailedPrecondition, gap.Error())
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: versionGapReason,
		Domain: errorDomain,
		Metadata: map[string]string{
			"have": strconv.FormatUint(gap.Have, 10),
			"want": strconv.FormatUint(gap.Want, 10),
		},
	})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// serverError maps an implementation's error to a gRPC status.
func serverError(err error) error {
	var gap *VersionGapError
	if errors.As(err, &gap) {
		return versionGapToStatus(gap)
	}
	return err
}

// versionGapFromStatus recovers a *VersionGapError from err, or returns nil.
func versionGapFromStatus(err error) *VersionGapError {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return nil
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetReason() != versionGapReason || info.GetDomain() != errorDomain {
			continue
		}
		have, err1 := strconv.ParseUint(info.GetMetadata()["have"], 10, 64)
		want, err2 := strconv.ParseUint(info.GetMetadata()["want"], 10, 64)
		if err1 != nil || err2 != nil {
			return nil
		}
		return &VersionGapError{Have: have, Want: want}
	}
	return nil
}
