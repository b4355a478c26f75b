package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-project/corral/sdk/tlsconfig"
)

const tlsUsage = `usage:
  corral tls ca create [-dir DIR] [-common-name NAME] [-days N]
      writes corral-ca.pem and corral-ca-key.pem
  corral tls cert create -server|-agent|-client [-name NAME] [-dir DIR]
        [-ca corral-ca.pem] [-key corral-ca-key.pem] [-dns NAME,...] [-ip IP,...] [-days N]
      writes corral-<role>-<name>.pem and corral-<role>-<name>-key.pem, signed by the CA;
      server and agent certificates are valid for localhost and 127.0.0.1 plus -dns and -ip

Then, in every master's and agent's HCL:
  tls {
    ca_file   = "corral-ca.pem"
    cert_file = "corral-server-master.pem"    # or the agent's
    key_file  = "corral-server-master-key.pem"
  }
and for the CLI and schedulers: CORRAL_CACERT, CORRAL_CLIENT_CERT, CORRAL_CLIENT_KEY.
`

// runTLS makes a CA and certificates for a test or small cluster, as
// `consul tls` and `nomad tls` do. Files are never overwritten.
func runTLS(args []string, stdout, stderr io.Writer) int {
	return run(context.Background(), append([]string{"tls"}, args...), stdout, stderr)
}

func tlsCmd(stdout, stderr io.Writer) *cobra.Command {
	create := func(kind, short string) *cobra.Command {
		fs, do := tlsFlagSet(kind, stdout, stderr)
		return group(kind, short, tlsUsage, command("create", short, "", fs, func(cmd *cobra.Command, args []string) int {
			if len(args) > 0 {
				return failUsage(cmd, usagef("create takes no arguments, got %q", args))
			}
			return do()
		}))
	}
	return group("tls", "make a CA and certificates for masters, agents and clients", tlsUsage,
		create("ca", "make a certificate authority"), create("cert", "make a certificate signed by the CA"))
}

// tlsFlagSet declares the flags of `corral tls ca|cert create`; do makes
// the files.
func tlsFlagSet(kind string, stdout, stderr io.Writer) (*flag.FlagSet, func() int) {
	fs := flag.NewFlagSet("corral tls "+kind+" create", flag.ContinueOnError)
	dir := fs.String("dir", ".", "directory to write the files to")
	days := fs.Int("days", 0, "validity in days (default: 1825 for a CA, 365 for a certificate)")
	commonName := fs.String("common-name", "corral CA", "the CA's common name")
	server := fs.Bool("server", false, "a master's certificate (server and client use)")
	agentRole := fs.Bool("agent", false, "an agent's certificate (server and client use)")
	client := fs.Bool("client", false, "a scheduler's, operator's or CLI's certificate (client use)")
	name := fs.String("name", "", "the principal the certificate identifies (default: master, agent or cli)")
	caFile := fs.String("ca", "corral-ca.pem", "the CA certificate")
	caKey := fs.String("key", "corral-ca-key.pem", "the CA key")
	dns := fs.String("dns", "", "more DNS names, comma-separated (servers and agents)")
	ips := fs.String("ip", "", "more IP addresses, comma-separated (servers and agents)")
	return fs, func() int {
		return tlsCreate(kind, stdout, stderr, *dir, *days, *commonName, *server, *agentRole, *client, *name, *caFile, *caKey, *dns, *ips)
	}
}

func tlsCreate(kind string, stdout, stderr io.Writer, dir string, days int, commonName string, server, agentRole, client bool,
	name, caFile, caKey, dns, ips string) int {
	validity := time.Duration(days) * 24 * time.Hour
	if days < 0 {
		fmt.Fprintf(stderr, "corral tls: -days must not be negative\n\n%s", tlsUsage)
		return 2
	}
	if kind == "ca" {
		cert, key := filepath.Join(dir, "corral-ca.pem"), filepath.Join(dir, "corral-ca-key.pem")
		if err := tlsconfig.CreateCA(cert, key, commonName, validity); err != nil {
			fmt.Fprintf(stderr, "corral tls: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "==> CA certificate %s\n==> CA key %s (keep it secret)\n", cert, key)
		return 0
	}
	var role tlsconfig.Role
	n := 0
	for _, r := range []struct {
		set  bool
		role tlsconfig.Role
		name string
	}{{server, tlsconfig.RoleServer, "master"}, {agentRole, tlsconfig.RoleAgent, "agent"}, {client, tlsconfig.RoleClient, "cli"}} {
		if r.set {
			n++
			role = r.role
			if name == "" {
				name = r.name
			}
		}
	}
	if n != 1 {
		fmt.Fprintln(stderr, "corral tls cert create: give exactly one of -server, -agent or -client")
		return 2
	}
	req := tlsconfig.CertRequest{Role: role, CommonName: name, Validity: validity}
	for _, d := range strings.Split(dns, ",") {
		if d = strings.TrimSpace(d); d != "" {
			req.DNSNames = append(req.DNSNames, d)
		}
	}
	for _, s := range strings.Split(ips, ",") {
		if s = strings.TrimSpace(s); s != "" {
			ip := net.ParseIP(s)
			if ip == nil {
				fmt.Fprintf(stderr, "corral tls cert create: -ip %q is not an IP address\n", s)
				return 2
			}
			req.IPs = append(req.IPs, ip)
		}
	}
	if role == tlsconfig.RoleClient && (len(req.DNSNames) > 0 || len(req.IPs) > 0) {
		fmt.Fprintln(stderr, "corral tls cert create: -dns and -ip are for -server and -agent certificates")
		return 2
	}
	base := filepath.Join(dir, fmt.Sprintf("corral-%s-%s", role, name))
	if err := tlsconfig.CreateCert(caFile, caKey, base+".pem", base+"-key.pem", req); err != nil {
		fmt.Fprintf(stderr, "corral tls: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "==> %s certificate for %q: %s\n==> key: %s-key.pem\n", role, name, base+".pem", base)
	return 0
}
