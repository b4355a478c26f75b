package conf

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/corral-project/corral/sdk/acl"
	"github.com/corral-project/corral/sdk/resources"
	"github.com/corral-project/corral/sdk/tlsconfig"
)

// field decodes one attribute into its place in a Config. Decoding attribute
// by attribute (instead of gohcl into a struct) is what lets a file set only
// some settings and keep the defaults of the rest, and lets value checks
// point at the attribute's line.
type field struct {
	name   string
	decode func(path string, attr *hcl.Attribute) hcl.Diagnostics
}

// decodeBody checks body against fields and blocks and decodes every
// attribute present. prefix ("master.") names attributes in errors.
func decodeBody(body hcl.Body, prefix string, fields []field, blocks ...hcl.BlockHeaderSchema) (*hcl.BodyContent, hcl.Diagnostics) {
	schema := &hcl.BodySchema{Blocks: blocks}
	for _, f := range fields {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: f.name})
	}
	content, diags := body.Content(schema)
	for _, f := range fields {
		if attr, ok := content.Attributes[f.name]; ok {
			diags = append(diags, f.decode(prefix+f.name, attr)...)
		}
	}
	return content, diags
}

// value decodes an attribute of Go type T, then runs check (if any) on it.
func value[T any](dst *T, check func(T) error) func(string, *hcl.Attribute) hcl.Diagnostics {
	return func(path string, attr *hcl.Attribute) hcl.Diagnostics {
		var v T
		if diags := decodeExpr(attr, &v); diags.HasErrors() {
			return diags
		}
		if check != nil {
			if err := check(v); err != nil {
				return invalid(path, attr, err)
			}
		}
		*dst = v
		return nil
	}
}

// duration decodes a Go duration string ("1s", "1m30s", "0").
func duration(dst *time.Duration, check func(time.Duration) error) func(string, *hcl.Attribute) hcl.Diagnostics {
	return func(path string, attr *hcl.Attribute) hcl.Diagnostics {
		var s string
		if diags := decodeExpr(attr, &s); diags.HasErrors() {
			return diags
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return invalid(path, attr, fmt.Errorf("%q is not a duration; use a number with a unit, such as \"500ms\", \"15s\" or \"1m30s\"", s))
		}
		if check != nil {
			if err := check(d); err != nil {
				return invalid(path, attr, err)
			}
		}
		*dst = d
		return nil
	}
}

// sha256Sum decodes a plugin's pinned checksum, lowercased so that sums
// pasted from any tool compare equal to the host's.
func sha256Sum(dst *string) func(string, *hcl.Attribute) hcl.Diagnostics {
	return func(path string, attr *hcl.Attribute) hcl.Diagnostics {
		var s string
		if diags := decodeExpr(attr, &s); diags.HasErrors() {
			return diags
		}
		if err := CheckSHA256(s); err != nil {
			return invalid(path, attr, err)
		}
		*dst = strings.ToLower(s)
		return nil
	}
}

func invalid(path string, attr *hcl.Attribute, err error) hcl.Diagnostics {
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid value for %s", path),
		Detail:   err.Error(),
		Subject:  attr.Expr.Range().Ptr(),
		Context:  attr.Range.Ptr(),
	}}
}

func decodeRoot(body hcl.Body, cfg *Config) hcl.Diagnostics {
	content, diags := decodeBody(body, "", []field{
		{"log_level", value(&cfg.LogLevel, checkLogLevel)},
		{"log_json", value(&cfg.LogJSON, nil)},
		{"plugin_dir", value(&cfg.PluginDir, nil)},
		{"credentials_file", value(&cfg.CredentialsFile, checkNotEmpty)},
	},
		hcl.BlockHeaderSchema{Type: "master"},
		hcl.BlockHeaderSchema{Type: "agent"},
		hcl.BlockHeaderSchema{Type: "plugin", LabelNames: []string{"name"}},
		hcl.BlockHeaderSchema{Type: "tls"},
		hcl.BlockHeaderSchema{Type: "consul"},
		hcl.BlockHeaderSchema{Type: "acl"},
	)
	if attr, ok := content.Attributes["credentials_file"]; ok && !diags.HasErrors() {
		var cdiags hcl.Diagnostics
		cfg.Credentials, cdiags = loadCredentials(attr, cfg.CredentialsFile)
		diags = append(diags, cdiags...)
	}
	seen := map[string]*hcl.Block{}
	for _, b := range content.Blocks {
		key := b.Type
		if b.Type == "plugin" {
			key = "plugin " + b.Labels[0]
		}
		if first, dup := seen[key]; dup {
			diags = append(diags, duplicate(b, first))
			continue
		}
		seen[key] = b
		switch b.Type {
		case "master":
			diags = append(diags, decodeMaster(b.Body, cfg.Master)...)
		case "agent":
			diags = append(diags, decodeAgent(b.Body, cfg.Agent)...)
		case "tls":
			diags = append(diags, decodeTLS(b, &cfg.TLS)...)
		case "acl":
			a, adiags := decodeACL(b)
			diags = append(diags, adiags...)
			cfg.ACL = a
		case "consul":
			cfg.Consul = &Consul{Address: "127.0.0.1:8500", Prefix: "corral", Scheme: "http"}
			diags = append(diags, decodeConsul(b.Body, cfg.Consul)...)
		case "plugin":
			p, pdiags := decodePlugin(b)
			diags = append(diags, pdiags...)
			cfg.Plugins = append(cfg.Plugins, p)
		}
	}
	return diags
}

// decodeTLS reads `tls { ca_file cert_file key_file verify_incoming
// verify_outgoing server_name }`. With the block present both checks
// default to on (mutual TLS); the files must exist and hold what they say.
func decodeTLS(b *hcl.Block, t *tlsconfig.Config) hcl.Diagnostics {
	t.VerifyIncoming, t.VerifyOutgoing = true, true
	_, diags := decodeBody(b.Body, "tls.", []field{
		{"ca_file", value(&t.CAFile, checkNotEmpty)},
		{"cert_file", value(&t.CertFile, checkNotEmpty)},
		{"key_file", value(&t.KeyFile, checkNotEmpty)},
		{"verify_incoming", value(&t.VerifyIncoming, nil)},
		{"verify_outgoing", value(&t.VerifyOutgoing, nil)},
		{"server_name", value(&t.ServerName, nil)},
	})
	if diags.HasErrors() {
		return diags
	}
	if err := t.Validate(); err != nil {
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid tls block",
			Detail: err.Error(), Subject: b.DefRange.Ptr()})
	}
	return diags
}

func checkRate(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("%v is not a rate; want calls per second, 0 for no limit", v)
	}
	return nil
}

func checkNotNegativeInt(v int) error {
	if v < 0 {
		return fmt.Errorf("%d is negative", v)
	}
	return nil
}

func duplicate(b, first *hcl.Block) *hcl.Diagnostic {
	what := fmt.Sprintf("%s block", b.Type)
	if len(b.Labels) > 0 {
		what = fmt.Sprintf("%s block named %q", b.Type, b.Labels[0])
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Duplicate %s block", b.Type),
		Detail:   fmt.Sprintf("A %s was already declared at %s; merge the two.", what, first.DefRange),
		Subject:  b.DefRange.Ptr(),
	}
}

// decodeConsul decodes `consul { address prefix token scheme ca_file
// cert_file key_file tls_server_name insecure_skip_verify check_ttl
// lock_delay }`.
func decodeConsul(body hcl.Body, c *Consul) hcl.Diagnostics {
	_, diags := decodeBody(body, "consul.", []field{
		{"address", value(&c.Address, checkHostPort)},
		{"scheme", value(&c.Scheme, checkScheme)},
		{"prefix", value(&c.Prefix, checkConsulPrefix)},
		{"token", value(&c.Token, nil)},
		{"ca_file", value(&c.CAFile, nil)},
		{"cert_file", value(&c.CertFile, nil)},
		{"key_file", value(&c.KeyFile, nil)},
		{"tls_server_name", value(&c.TLSServerName, nil)},
		{"insecure_skip_verify", value(&c.InsecureSkipVerify, nil)},
		{"check_ttl", duration(&c.CheckTTL, checkPositive)},
		{"lock_delay", duration(&c.LockDelay, checkPositive)},
	})
	return diags
}

func decodeMaster(body hcl.Body, m *Master) hcl.Diagnostics {
	content, diags := decodeBody(body, "master.", []field{
		{"address", value(&m.Address, checkHostPort)},
		{"work_dir", value(&m.WorkDir, checkNotEmpty)},
		{"allocation_interval", duration(&m.AllocationInterval, checkPositive)},
		{"allocator", value(&m.Allocator, checkPluginName)},
		{"allocator_timeout", duration(&m.AllocatorTimeout, checkPositive)},
		{"allocator_init_timeout", duration(&m.AllocatorInitTimeout, checkPositive)},
		{"offer_timeout", duration(&m.OfferTimeout, checkNotNegative)},
		{"heartbeat_interval", duration(&m.HeartbeatInterval, checkPositive)},
		{"agent_reregister_timeout", duration(&m.AgentReregisterTimeout, checkPositive)},
		{"max_message_bytes", value(&m.MaxMessageBytes, checkPositiveInt)},
		{"revoke_after", duration(&m.RevokeAfter, checkNotNegative)},
		{"revoke_grace", duration(&m.RevokeGrace, checkPositive)},
		{"framework_call_rate", value(&m.FrameworkCallRate, checkRate)},
		{"framework_call_burst", value(&m.FrameworkCallBurst, checkNotNegativeInt)},
		{"max_subscriptions_per_principal", value(&m.MaxSubscriptionsPerPrincipal, checkNotNegativeInt)},
	}, hcl.BlockHeaderSchema{Type: "role", LabelNames: []string{"name"}})
	// Roles in a file replace the (empty) default list as a whole.
	seen := map[string]*hcl.Block{}
	for _, b := range content.Blocks {
		if first, dup := seen[b.Labels[0]]; dup {
			diags = append(diags, duplicate(b, first))
			continue
		}
		seen[b.Labels[0]] = b
		r, rdiags := decodeRole(b)
		diags = append(diags, rdiags...)
		m.Roles = append(m.Roles, r)
	}
	return diags
}

// decodeRole decodes `role "eng/ml" { weight priority quota { guarantee limit } }`.
func decodeRole(b *hcl.Block) (Role, hcl.Diagnostics) {
	r := Role{Name: b.Labels[0], Weight: 1}
	var diags hcl.Diagnostics
	if err := checkRoleName(r.Name); err != nil {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Invalid role name", Detail: err.Error(),
			Subject: b.LabelRanges[0].Ptr(),
		})
	}
	prefix := fmt.Sprintf("master.role[%q].", r.Name)
	content, rdiags := decodeBody(b.Body, prefix, []field{
		{"weight", value(&r.Weight, checkWeight)},
		{"priority", value(&r.Priority, nil)},
	}, hcl.BlockHeaderSchema{Type: "quota"})
	diags = append(diags, rdiags...)
	var first *hcl.Block
	for _, qb := range content.Blocks {
		if first != nil {
			diags = append(diags, duplicate(qb, first))
			continue
		}
		first = qb
		diags = append(diags, decodeQuota(qb, prefix+"quota", &r)...)
	}
	return r, diags
}

// decodeQuota decodes a role's quota block into r.Guarantee and r.Limit.
// path is "master.role[\"eng\"].quota".
func decodeQuota(b *hcl.Block, path string, r *Role) hcl.Diagnostics {
	if r.Name == "*" {
		// "*" is every framework's fallback role: a guarantee would be held
		// back for nobody in particular and a limit would cap every
		// role-less framework at once.
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid block %s", path),
			Detail:   ErrStarQuota.Error(),
			Subject:  b.DefRange.Ptr(),
		}}
	}
	content, diags := decodeBody(b.Body, path+".", []field{
		{"guarantee", quota(&r.Guarantee)},
		{"limit", quota(&r.Limit)},
	})
	if diags.HasErrors() {
		return diags
	}
	if err := CheckGuaranteeWithinLimit(r.Guarantee, r.Limit); err != nil {
		g, l := content.Attributes["guarantee"], content.Attributes["limit"]
		err = fmt.Errorf("%w (limit set at %s)", err, l.Range)
		diags = append(diags, invalid(path+".guarantee", g, err)...)
	}
	return diags
}

// quota decodes a quota resource string ("cpus:8;mem:16384"); "" means none.
func quota(dst *resources.Resources) func(string, *hcl.Attribute) hcl.Diagnostics {
	return func(path string, attr *hcl.Attribute) hcl.Diagnostics {
		var s string
		if diags := decodeExpr(attr, &s); diags.HasErrors() {
			return diags
		}
		r, err := ParseQuota(s)
		if err != nil {
			return invalid(path, attr, err)
		}
		*dst = r
		return nil
	}
}

func decodeAgent(body hcl.Body, a *Agent) hcl.Diagnostics {
	content, diags := decodeBody(body, "agent.", []field{
		{"master", value(&a.Master, checkMasterSpec)},
		{"address", value(&a.Address, checkHostPort)},
		{"work_dir", value(&a.WorkDir, checkNotEmpty)},
		{"hostname", value(&a.Hostname, nil)},
		{"resources", value(&a.Resources, checkResources)},
		{"attributes", value(&a.Attributes, nil)},
		{"isolator", value(&a.Isolator, checkPluginName)},
		{"isolators", value(&a.Isolators, checkPluginNames)},
		{"executor", value(&a.Executor, checkPluginName)},
		{"executor_shutdown_grace", duration(&a.ExecutorShutdownGrace, checkNotNegative)},
		{"status_update_retry", duration(&a.StatusUpdateRetry, checkPositive)},
		{"executor_idle_timeout", duration(&a.ExecutorIdleTimeout, checkPositive)},
		{"executor_reregister_timeout", duration(&a.ExecutorReregisterTimeout, checkPositive)},
		{"on_shutdown", value(&a.OnShutdown, checkOnShutdown)},
		{"gc_delay", duration(&a.GCDelay, checkPositive)},
		{"disk_watch_interval", duration(&a.DiskWatchInterval, checkPositive)},
		{"gc_disk_headroom", value(&a.GCDiskHeadroom, checkHeadroom)},
		{"allow_root_tasks", optionalBool(&a.AllowRootTasks)},
		{"credential_file", value(&a.CredentialFile, checkNotEmpty)},
	})
	if attr, ok := content.Attributes["credential_file"]; ok && !diags.HasErrors() {
		c, err := acl.LoadCredential(a.CredentialFile)
		if err != nil {
			return append(diags, invalid("agent.credential_file", attr, err)...)
		}
		a.Credential = &c
	}
	return diags
}

// optionalBool decodes a bool whose absence means "the default" (nil).
func optionalBool(dst **bool) func(string, *hcl.Attribute) hcl.Diagnostics {
	return func(path string, attr *hcl.Attribute) hcl.Diagnostics {
		var b bool
		if diags := value(&b, nil)(path, attr); diags.HasErrors() {
			return diags
		}
		*dst = &b
		return nil
	}
}

func decodePlugin(b *hcl.Block) (Plugin, hcl.Diagnostics) {
	p := Plugin{Name: b.Labels[0], DeclRange: b.DefRange}
	var diags hcl.Diagnostics
	if err := checkPluginName(p.Name); err != nil {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Invalid plugin name", Detail: err.Error(),
			Subject: b.LabelRanges[0].Ptr(),
		})
	}
	content, bdiags := decodeBody(b.Body, fmt.Sprintf("plugin[%q].", p.Name), []field{
		{"path", value(&p.Path, nil)},
		{"args", value(&p.Args, nil)},
		{"sha256", sha256Sum(&p.SHA256)},
	}, hcl.BlockHeaderSchema{Type: "config"})
	diags = append(diags, bdiags...)
	var first *hcl.Block
	for _, cb := range content.Blocks {
		if first != nil {
			diags = append(diags, duplicate(cb, first))
			continue
		}
		first = cb
		p.Config = cb.Body
	}
	return p, diags
}

// decodeExpr evaluates a constant expression into the Go value dst points
// to. (gohcl does the same but pulls in hclwrite and its dependencies.)
func decodeExpr(attr *hcl.Attribute, dst any) hcl.Diagnostics {
	val, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	ty, err := gocty.ImpliedType(dst)
	if err != nil {
		panic(fmt.Sprintf("conf: cannot decode into %T: %v", dst, err))
	}
	conv, err := convert.Convert(val, ty)
	if err == nil && conv.IsNull() {
		err = fmt.Errorf("must not be null")
	}
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   fmt.Sprintf("Inappropriate value for attribute %q: %s (want %s).", attr.Name, err, ty.FriendlyName()),
			Subject:  attr.Expr.Range().Ptr(),
			Context:  attr.Range.Ptr(),
		}}
	}
	if err := gocty.FromCtyValue(conv, dst); err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unsuitable value",
			Detail:   fmt.Sprintf("Unsuitable value for attribute %q: %s.", attr.Name, err),
			Subject:  attr.Expr.Range().Ptr(),
			Context:  attr.Range.Ptr(),
		}}
	}
	return nil
}
