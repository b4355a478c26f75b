package main

import (
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/authn"
	"github.com/corral-project/corral/core/master"
)

// authenticator is the master's: client certificates always identify,
// and the credentials file (credentials_file) adds principals with
// secrets. One per process, so that a reload reaches every server.
func (h *haMaster) authenticator() *authn.Authenticator {
	h.authnOnce.Do(func() { h.authn = &authn.Authenticator{Credentials: h.cfg.Credentials} })
	return h.authn
}

// reloadSecurity wraps the config reload of a SIGHUP: a file that parses
// replaces the ACLs and credentials of m (before the rest of the reload,
// which may refuse other changes: who may do what should not wait on an
// allocator swap).
func (h *haMaster) reloadSecurity(m *master.Master) func() (*conf.Config, error) {
	return func() (*conf.Config, error) {
		cfg, err := h.reload()
		if err != nil {
			return nil, err
		}
		m.SetACLs(cfg.ACL)
		h.authenticator().SetCredentials(cfg.Credentials)
		return cfg, nil
	}
}

// announceACLs says at start whether ACLs are in force, so that an open
// cluster is never one by accident.
func announceACLs(cfg *conf.Config, role string, stderr io.Writer, log hclog.Logger) {
	if role != "dev" && role != "master" {
		return
	}
	if cfg.ACL == nil {
		log.Info("ACLs are off: every caller may do everything (add an acl block to enforce them)")
		fmt.Fprintf(stderr, "corral %s: ACLs off (no acl block): every caller may do everything\n", role)
		return
	}
	rules := 0
	for _, r := range cfg.ACL.Rules {
		rules += len(r)
	}
	log.Info("ACLs in force", "rules", rules, "permissive", cfg.ACL.Permissive, "credentials", cfg.Credentials.Len())
}
