package conf

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/corral-project/corral/sdk/acl"
)

// decodeACL reads the `acl { ... }` block: `permissive` (default false:
// what no rule allows is denied) and, per action, any number of rule
// blocks in the order they are checked, each with `principals` and the
// action's object list (for example `roles` for register_frameworks,
// `users` for run_tasks; absent means ["ANY"]):
//
//	acl {
//	  register_frameworks {
//	    principals = ["analytics"]
//	    roles      = ["analytics", "batch/*"]
//	  }
//	  run_tasks {
//	    principals = ["ANY"]
//	    users      = ["nobody"]
//	  }
//	}
func decodeACL(b *hcl.Block) (*acl.ACLs, hcl.Diagnostics) {
	a := &acl.ACLs{Rules: map[acl.Action][]acl.Rule{}}
	var blocks []hcl.BlockHeaderSchema
	for _, x := range acl.Actions {
		blocks = append(blocks, hcl.BlockHeaderSchema{Type: string(x.Action)})
	}
	content, diags := decodeBody(b.Body, "acl.", []field{{"permissive", value(&a.Permissive, nil)}}, blocks...)
	for _, rb := range content.Blocks {
		action := acl.Action(rb.Type)
		object := acl.ObjectName(action)
		path := fmt.Sprintf("acl.%s[%d].", rb.Type, len(a.Rules[action]))
		var principals, objects []string
		content, rdiags := decodeBody(rb.Body, path, []field{
			{"principals", value(&principals, nil)},
			{object, value(&objects, nil)},
		})
		diags = append(diags, rdiags...)
		if rdiags.HasErrors() {
			continue
		}
		attr, ok := content.Attributes["principals"]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing principals",
				Detail:  fmt.Sprintf("an %s rule needs principals = [...] (names, or [%q])", rb.Type, acl.Any),
				Subject: rb.DefRange.Ptr()})
			continue
		}
		var rule acl.Rule
		var err error
		if rule.Principals, err = acl.NewEntity(principals); err != nil {
			diags = append(diags, invalid(path+"principals", attr, err)...)
			continue
		}
		if rule.Principals.None {
			diags = append(diags, invalid(path+"principals", attr, fmt.Errorf("%q is for objects; a rule for no principal does nothing", acl.None))...)
			continue
		}
		if oattr, ok := content.Attributes[object]; ok {
			if rule.Objects, err = acl.NewEntity(objects); err != nil {
				diags = append(diags, invalid(path+object, oattr, err)...)
				continue
			}
		} else {
			rule.Objects = acl.Entity{Any: true}
		}
		a.Rules[action] = append(a.Rules[action], rule)
	}
	return a, diags
}

// loadCredentials reads the file named by credentials_file (Mesos's
// credentials JSON) so that a broken file fails at startup with its line.
func loadCredentials(attr *hcl.Attribute, path string) (*acl.Credentials, hcl.Diagnostics) {
	c, err := acl.LoadCredentials(path)
	if err != nil {
		return nil, invalid("credentials_file", attr, err)
	}
	return c, nil
}
