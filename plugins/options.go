package plugins

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OptionType is the type of an adapter option's value. Values travel as
// strings (ConfigureRequest.Options); the type says which strings fit.
type OptionType int

const (
	OptionString   OptionType = iota // any string
	OptionBool                       // true or false (strconv.ParseBool)
	OptionInt                        // a decimal integer
	OptionDuration                   // a Go duration such as 500ms or 30s
	OptionEnum                       // one of OptionSpec.Values
)

func (t OptionType) String() string {
	switch t {
	case OptionString:
		return "string"
	case OptionBool:
		return "bool"
	case OptionInt:
		return "int"
	case OptionDuration:
		return "duration"
	case OptionEnum:
		return "enum"
	}
	return fmt.Sprintf("OptionType(%d)", int(t))
}

// OptionSpec declares one option an adapter accepts, in
// InfoResponse.Options: the host checks the operator's values against it
// before Configure, and `weft adapter NAME --help` prints it.
type OptionSpec struct {
	Name        string
	Type        OptionType
	Default     string // used when the option is not given, as written by an operator; "" for none
	Description string
	Required    bool
	Values      []string // OptionEnum: the values allowed
}

// TypeText is the type as the help and errors print it, with an enum's
// values: "enum: json or protobuf".
func (o OptionSpec) TypeText() string {
	if o.Type == OptionEnum {
		return "enum: " + OrList(o.Values)
	}
	return o.Type.String()
}

// Check returns why v is not a value of the option's type, or nil.
func (o OptionSpec) Check(v string) error {
	switch o.Type {
	case OptionBool:
		if _, err := strconv.ParseBool(v); err != nil {
			return errors.New("give true or false")
		}
	case OptionInt:
		if _, err := strconv.Atoi(v); err != nil {
			return errors.New("give a whole number such as 10")
		}
	case OptionDuration:
		if _, err := time.ParseDuration(v); err != nil {
			return errors.New("give a duration such as 500ms or 30s")
		}
	case OptionEnum:
		if !slices.Contains(o.Values, v) {
			return fmt.Errorf("give %s", OrList(o.Values))
		}
	}
	return nil
}

// CheckOptions checks the options an operator gave against the ones an
// adapter declares: each declared option given must have a value of its
// type, and each required one must be given. Options the adapter does not
// declare are left to it (some adapters ignore them with a warning). The
// error names every option that does not fit, its type and what is wrong.
func CheckOptions(specs []OptionSpec, given map[string]string) error {
	var problems []string
	for _, o := range specs {
		v, ok := given[o.Name]
		if !ok {
			if o.Required {
				problems = append(problems, fmt.Sprintf("option %s (%s) is required: %s", o.Name, o.TypeText(), o.Description))
			}
			continue
		}
		if err := o.Check(v); err != nil {
			problems = append(problems, fmt.Sprintf("option %s (%s) = %q: %v", o.Name, o.TypeText(), v, err))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// checkSpecs reports a schema an adapter cannot mean: a nameless or
// repeated option, an enum without values, a default that does not fit.
func checkSpecs(specs []OptionSpec) error {
	seen := map[string]bool{}
	for _, o := range specs {
		switch {
		case o.Name == "":
			return errors.New("an option has no name")
		case seen[o.Name]:
			return fmt.Errorf("option %s is declared twice", o.Name)
		case o.Type < OptionString || o.Type > OptionEnum:
			return fmt.Errorf("option %s has an unknown type %d", o.Name, int(o.Type))
		case o.Type == OptionEnum && len(o.Values) == 0:
			return fmt.Errorf("option %s is an enum without values", o.Name)
		}
		if o.Default != "" {
			if err := o.Check(o.Default); err != nil {
				return fmt.Errorf("option %s has a default %q that does not fit its type (%s): %v", o.Name, o.Default, o.TypeText(), err)
			}
		}
		seen[o.Name] = true
	}
	return nil
}

// OrList writes values as "a", "a or b", "a, b or c".
func OrList(values []string) string {
	switch len(values) {
	case 0:
		return ""
	case 1:
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}
