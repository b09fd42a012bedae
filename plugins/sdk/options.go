package sdk

import (
	"sort"
	"strconv"
	"time"

	"github.com/weftmesh/weft/plugins"
)

// The option schema an adapter declares in InfoResponse.Options.
type (
	OptionSpec = plugins.OptionSpec
	OptionType = plugins.OptionType
)

// Option types.
const (
	OptionString   = plugins.OptionString
	OptionBool     = plugins.OptionBool
	OptionInt      = plugins.OptionInt
	OptionDuration = plugins.OptionDuration
	OptionEnum     = plugins.OptionEnum
)

// Options are an adapter's options read with its schema: typed values,
// defaults applied. Make them with ParseOptions in Configure. A name the
// schema does not declare reads as the zero value.
type Options struct {
	specs  map[string]OptionSpec
	given  map[string]string
	values map[string]string // given, else the default
}

// ParseOptions reads the options of a ConfigureRequest with the schema the
// adapter declares in Info. A declared option whose value does not fit its
// type is an error diagnostic "Invalid NAME" (the host has refused such a
// value already; this guards an adapter called directly, as in its
// tests); the typed getters then return the default. Options the schema
// does not declare are listed by Unknown, for the adapter to refuse or
// ignore.
func ParseOptions(specs []OptionSpec, given map[string]string) (Options, []Diagnostic) {
	o := Options{specs: map[string]OptionSpec{}, given: given, values: map[string]string{}}
	var diags []Diagnostic
	for _, s := range specs {
		o.specs[s.Name] = s
		o.values[s.Name] = s.Default
		v, ok := given[s.Name]
		if !ok {
			if s.Required {
				diags = append(diags, Errorf("Missing "+s.Name, "Option %s (%s) is required: %s", s.Name, s.TypeText(), s.Description))
			}
			continue
		}
		if err := s.Check(v); err != nil {
			diags = append(diags, Errorf("Invalid "+s.Name, "Option %s = %q: %v.", s.Name, v, err))
			continue
		}
		o.values[s.Name] = v
	}
	return o, diags
}

// Unknown returns the names given that the schema does not declare,
// sorted.
func (o Options) Unknown() []string {
	var out []string
	for k := range o.given {
		if _, ok := o.specs[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Given reports whether the operator gave the option.
func (o Options) Given(name string) bool {
	_, ok := o.given[name]
	return ok
}

// String returns a string or enum option's value.
func (o Options) String(name string) string {
	return o.values[name]
}

// Bool returns a bool option's value; false if it has none.
func (o Options) Bool(name string) bool {
	b, _ := strconv.ParseBool(o.values[name])
	return b
}

// Int returns an int option's value; 0 if it has none.
func (o Options) Int(name string) int {
	n, _ := strconv.Atoi(o.values[name])
	return n
}

// Duration returns a duration option's value; 0 if it has none.
func (o Options) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(o.values[name])
	return d
}
