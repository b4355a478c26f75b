package conf

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Error is an invalid configuration: every problem found, each with the
// file, line and column it is about.
type Error struct {
	Diagnostics hcl.Diagnostics
}

// DiagnosticsError returns nil if diags holds no error, else an *Error with
// the errors in diags (warnings are dropped).
func DiagnosticsError(diags hcl.Diagnostics) error {
	var errs hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, d)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &Error{Diagnostics: errs}
}

// Error formats one problem per line as "file:line,col-col: summary; detail".
func (e *Error) Error() string {
	lines := make([]string, 0, len(e.Diagnostics))
	for _, d := range e.Diagnostics {
		lines = append(lines, FormatDiagnostic(d))
	}
	return strings.Join(lines, "\n")
}

// FormatDiagnostic formats d as "file:line,col-col: summary; detail".
func FormatDiagnostic(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Subject != nil {
		b.WriteString(d.Subject.String())
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString("; ")
		b.WriteString(d.Detail)
	}
	return b.String()
}
