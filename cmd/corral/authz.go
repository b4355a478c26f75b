package main

import (
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/core/authn"
)

// authenticator is the master's: client certificates always identify,
// and the credentials file (credentials_file) adds principals with
// secrets.
func authenticator(cfg *conf.Config) *authn.Authenticator {
	return &authn.Authenticator{Credentials: cfg.Credentials}
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
