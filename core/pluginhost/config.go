package pluginhost

import (
	"fmt"

	"github.com/corral-project/corral/conf"
	"github.com/corral-project/corral/pluginapi/base"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// ctyType maps a schema attribute type to its cty type.
func ctyType(t string) (cty.Type, error) {
	switch t {
	case "string":
		return cty.String, nil
	case "number":
		return cty.Number, nil
	case "bool":
		return cty.Bool, nil
	case "list(string)":
		return cty.List(cty.String), nil
	case "list(number)":
		return cty.List(cty.Number), nil
	case "map(string)":
		return cty.Map(cty.String), nil
	}
	return cty.NilType, fmt.Errorf("unknown attribute type %q", t)
}

// specFromSchema turns a plugin's config schema into an hcldec spec. Errors
// here are the plugin's fault (a schema it cannot mean).
func specFromSchema(schema *base.Schema) (hcldec.ObjectSpec, error) {
	spec := hcldec.ObjectSpec{}
	for _, a := range schema.Attributes {
		ty, err := ctyType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("config schema: attribute %q: %w", a.Name, err)
		}
		var s hcldec.Spec = &hcldec.AttrSpec{Name: a.Name, Type: ty, Required: a.Required}
		if a.DefaultJSON != "" && !a.Required {
			def, err := ctyjson.Unmarshal([]byte(a.DefaultJSON), ty)
			if err != nil {
				return nil, fmt.Errorf("config schema: attribute %q: default %s is not a %s: %w", a.Name, a.DefaultJSON, a.Type, err)
			}
			s = &hcldec.DefaultSpec{Primary: s, Default: &hcldec.LiteralSpec{Value: def}}
		}
		spec[a.Name] = s
	}
	return spec, nil
}

// decodeConfig decodes body (nil: no config block) against schema and
// returns the JSON object the plugin's SetConfig receives. Attributes left
// out without a default are omitted rather than sent as null. Errors in the
// operator's HCL come back as *conf.Error, with file and line.
func decodeConfig(body hcl.Body, schema *base.Schema) ([]byte, error) {
	spec, err := specFromSchema(schema)
	if err != nil {
		return nil, err
	}
	if body == nil {
		body = hcl.EmptyBody()
	}
	val, diags := hcldec.Decode(body, spec, nil)
	if diags.HasErrors() {
		return nil, conf.DiagnosticsError(diags)
	}
	set := map[string]cty.Value{}
	for name, v := range val.AsValueMap() {
		if !v.IsNull() {
			set[name] = v
		}
	}
	obj := cty.EmptyObjectVal
	if len(set) > 0 {
		obj = cty.ObjectVal(set)
	}
	return ctyjson.Marshal(obj, obj.Type())
}
