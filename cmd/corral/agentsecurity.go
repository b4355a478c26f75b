package main

import (
	"strconv"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/agent"
)

// agentCredential is the principal and secret the agent presents to the
// master (agent { credential_file }), nil when none is configured.
func agentCredential(ac *conf.Agent) *agent.Credential {
	if ac.Credential == nil {
		return nil
	}
	return &agent.Credential{Principal: ac.Credential.Principal, Secret: ac.Credential.Secret}
}

// optionalBool is a boolean flag that remembers whether it was given
// (-allow-root-tasks, -allow-root-tasks=false), so that an absent flag
// leaves the HCL setting, or its default, in force.
type optionalBool struct{ p **bool }

func (o optionalBool) String() string {
	if o.p == nil || *o.p == nil {
		return ""
	}
	return strconv.FormatBool(**o.p)
}

func (o optionalBool) Set(v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return err
	}
	*o.p = &b
	return nil
}

// IsBoolFlag lets the flag stand alone (-allow-root-tasks means =true).
func (o optionalBool) IsBoolFlag() bool { return true }

// Type names the value "bool" in --help, as a plain boolean flag.
func (o optionalBool) Type() string { return "bool" }
