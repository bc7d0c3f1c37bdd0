package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Limits on a custom policy document.
const (
	// MaxDocumentSize is the largest document, counted in bytes of its
	// compact JSON form (insignificant whitespace does not count).
	MaxDocumentSize = 6 * 1024
	// MaxStatements is the most statements a document may hold.
	MaxStatements = 64
	// MaxValuesPerField is the most actions, and the most resources, one
	// statement may list.
	MaxValuesPerField = 64
	// MaxStringLength is the longest single action or resource, in bytes.
	MaxStringLength = 512

	// maxRawSize bounds the work done on input before the compact size is
	// known, so a huge body of whitespace cannot cost much.
	maxRawSize = 64 * 1024
)

// Version is the only document version Berth understands.
const Version = "1"

// Effect is the effect of a statement.
type Effect string

// The two effects a statement may have.
const (
	EffectAllow Effect = "Allow"
	EffectDeny  Effect = "Deny"
)

// ErrInvalidPolicy is wrapped by every validation error; the HTTP layer maps it
// to the API code INVALID_POLICY.
var ErrInvalidPolicy = errors.New("invalid policy document")

// ValidationError says what is wrong with a policy document and where.
type ValidationError struct {
	// Statement is the index of the offending statement, or -1 when the
	// problem is with the document as a whole.
	Statement int
	// Field names the offending field, with an index for list elements,
	// e.g. "Version", "Effect", "Action[2]", "Resource".
	Field string
	// Message says what is wrong and, where it can, how to fix it.
	Message string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidPolicy.Error())
	b.WriteString(": ")
	if e.Statement >= 0 {
		fmt.Fprintf(&b, "Statement[%d]", e.Statement)
		if e.Field != "" {
			b.WriteByte('.')
		}
	}
	b.WriteString(e.Field)
	if e.Statement >= 0 || e.Field != "" {
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap lets callers test errors.Is(err, ErrInvalidPolicy).
func (e *ValidationError) Unwrap() error { return ErrInvalidPolicy }

func invalid(stmt int, field, format string, args ...any) *ValidationError {
	return &ValidationError{Statement: stmt, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Document is a RAM policy document (SPEC §9).
//
// Decoding a Document with encoding/json validates it exactly as Parse does,
// so a request body that embeds a document cannot smuggle in an invalid one.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement allows or denies a set of actions on a set of resources.
type Statement struct {
	Effect   Effect   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`

	// Whether Action and Resource were written as a bare string rather than a
	// list, so a parsed document marshals back in the shape it came in.
	actionScalar, resourceScalar bool
}

// MarshalJSON writes Action and Resource as lists, or as a bare string where
// the parsed document had one.
func (s Statement) MarshalJSON() ([]byte, error) {
	out := struct {
		Effect   Effect `json:"Effect"`
		Action   any    `json:"Action"`
		Resource any    `json:"Resource"`
	}{Effect: s.Effect, Action: listOrScalar(s.Action, s.actionScalar), Resource: listOrScalar(s.Resource, s.resourceScalar)}
	return json.Marshal(out)
}

func listOrScalar(v []string, scalar bool) any {
	if scalar && len(v) == 1 {
		return v[0]
	}
	if v == nil {
		return []string{}
	}
	return v
}

// UnmarshalJSON parses and validates a document; see Parse.
func (d *Document) UnmarshalJSON(data []byte) error {
	doc, err := Parse(data)
	if err != nil {
		return err
	}
	*d = *doc
	return nil
}

// Parse decodes and validates a policy document. Every error it returns is a
// *ValidationError wrapping ErrInvalidPolicy.
func Parse(data []byte) (*Document, error) {
	if len(data) > maxRawSize {
		return nil, invalid(-1, "", "document is %d bytes; the limit is %d bytes of compact JSON", len(data), MaxDocumentSize)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, invalid(-1, "", "not valid JSON: %v", err)
	}
	if compact.Len() > MaxDocumentSize {
		return nil, invalid(-1, "", "document is %d bytes of compact JSON; the limit is %d", compact.Len(), MaxDocumentSize)
	}
	doc, err := decode(compact.Bytes())
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	return doc, nil
}

// decode turns valid, compact JSON into a Document, checking only shape: the
// object keys and the JSON types of their values.
func decode(data []byte) (*Document, error) {
	fields, err := object(data, -1, "", "document must be a JSON object")
	if err != nil {
		return nil, err
	}
	if err := knownKeys(fields, -1, "Version", "Statement"); err != nil {
		return nil, err
	}
	doc := &Document{}
	raw, ok := fields["Version"]
	if !ok {
		return nil, invalid(-1, "Version", "missing; set \"Version\": %q", Version)
	}
	if err := json.Unmarshal(raw, &doc.Version); err != nil {
		return nil, invalid(-1, "Version", "must be the string %q, not %s", Version, raw)
	}
	raw, ok = fields["Statement"]
	if !ok {
		return nil, invalid(-1, "Statement", "missing; a document needs at least one statement")
	}
	var stmts []json.RawMessage
	if err := json.Unmarshal(raw, &stmts); err != nil || stmts == nil {
		return nil, invalid(-1, "Statement", "must be a list of statements")
	}
	if len(stmts) > MaxStatements {
		return nil, invalid(-1, "Statement", "%d statements; the limit is %d", len(stmts), MaxStatements)
	}
	doc.Statement = make([]Statement, len(stmts))
	for i, rs := range stmts {
		st, err := decodeStatement(rs, i)
		if err != nil {
			return nil, err
		}
		doc.Statement[i] = st
	}
	return doc, nil
}

func decodeStatement(data []byte, i int) (Statement, error) {
	var st Statement
	fields, err := object(data, i, "", "a statement must be a JSON object")
	if err != nil {
		return st, err
	}
	if err := knownKeys(fields, i, "Effect", "Action", "Resource"); err != nil {
		return st, err
	}
	raw, ok := fields["Effect"]
	if !ok {
		return st, invalid(i, "Effect", "missing; use %q or %q", EffectAllow, EffectDeny)
	}
	var effect string
	if err := json.Unmarshal(raw, &effect); err != nil {
		return st, invalid(i, "Effect", "must be the string %q or %q, not %s", EffectAllow, EffectDeny, raw)
	}
	st.Effect = Effect(effect)
	if st.Action, st.actionScalar, err = stringList(fields, i, "Action"); err != nil {
		return st, err
	}
	if st.Resource, st.resourceScalar, err = stringList(fields, i, "Resource"); err != nil {
		return st, err
	}
	return st, nil
}

func object(data []byte, stmt int, field, msg string) (map[string]json.RawMessage, error) {
	if len(data) == 0 || data[0] != '{' {
		return nil, invalid(stmt, field, "%s", msg)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, invalid(stmt, field, "%s", msg)
	}
	return m, nil
}

// knownKeys refuses keys the format does not have. encoding/json would match
// keys case-insensitively and drop unknown ones silently; a policy that says
// "NotAction" or "Condition" must not be taken to mean something broader.
func knownKeys(fields map[string]json.RawMessage, stmt int, known ...string) error {
	for k := range fields {
		found := false
		for _, want := range known {
			if k == want {
				found = true
				break
			}
		}
		if found {
			continue
		}
		for _, want := range known {
			if strings.EqualFold(k, want) {
				return invalid(stmt, k, "field names are case-sensitive; use %q", want)
			}
		}
		return invalid(stmt, k, "unknown field; allowed fields are %s", strings.Join(known, ", "))
	}
	return nil
}

// stringList decodes a field that is either a string or a list of strings.
func stringList(fields map[string]json.RawMessage, stmt int, name string) ([]string, bool, error) {
	raw, ok := fields[name]
	if !ok {
		return nil, false, invalid(stmt, name, "missing; give a string or a list of strings")
	}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, invalid(stmt, name, "must be a string or a list of strings")
		}
		return []string{s}, true, nil
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false, invalid(stmt, name, "must be a string or a list of strings, not %s", raw)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, false, invalid(stmt, name, "must be a string or a list of strings")
	}
	if len(elems) > MaxValuesPerField {
		return nil, false, invalid(stmt, name, "%d values; the limit is %d per statement", len(elems), MaxValuesPerField)
	}
	out := make([]string, len(elems))
	for j, e := range elems {
		if len(e) == 0 || e[0] != '"' || json.Unmarshal(e, &out[j]) != nil {
			return nil, false, invalid(stmt, fmt.Sprintf("%s[%d]", name, j), "must be a string, not %s", e)
		}
	}
	return out, false, nil
}

// Validate checks a document's content: the version, every effect, action and
// resource, and the limits. Parse calls it; call it yourself on a document
// built in code.
func (d *Document) Validate() error {
	if d == nil {
		return invalid(-1, "", "document is missing")
	}
	if d.Version != Version {
		return invalid(-1, "Version", "unknown version %q; the only version is %q", d.Version, Version)
	}
	if len(d.Statement) == 0 {
		return invalid(-1, "Statement", "a document needs at least one statement")
	}
	if len(d.Statement) > MaxStatements {
		return invalid(-1, "Statement", "%d statements; the limit is %d", len(d.Statement), MaxStatements)
	}
	for i, st := range d.Statement {
		if err := st.validate(i); err != nil {
			return err
		}
	}
	return nil
}

func (s *Statement) validate(i int) error {
	switch s.Effect {
	case EffectAllow, EffectDeny:
	default:
		return invalid(i, "Effect", "unknown effect %q; use %q or %q", s.Effect, EffectAllow, EffectDeny)
	}
	if err := validateList(i, "Action", s.Action, validateAction); err != nil {
		return err
	}
	return validateList(i, "Resource", s.Resource, validateResource)
}

func validateList(i int, name string, values []string, check func(string) string) error {
	if len(values) == 0 {
		return invalid(i, name, "empty; give at least one value")
	}
	if len(values) > MaxValuesPerField {
		return invalid(i, name, "%d values; the limit is %d per statement", len(values), MaxValuesPerField)
	}
	for j, v := range values {
		field := name
		if len(values) > 1 {
			field = fmt.Sprintf("%s[%d]", name, j)
		}
		if v == "" {
			return invalid(i, field, "empty string")
		}
		if len(v) > MaxStringLength {
			return invalid(i, field, "%d bytes long; the limit is %d", len(v), MaxStringLength)
		}
		if msg := check(v); msg != "" {
			return invalid(i, field, "%s", msg)
		}
	}
	return nil
}

// validateAction returns what is wrong with an action pattern, or "".
func validateAction(a string) string {
	if a == "*" {
		return ""
	}
	service, name, ok := strings.Cut(a, ":")
	if !ok || !strings.EqualFold(service, "cr") {
		if ok && strings.EqualFold(service, "ram") {
			return fmt.Sprintf("%q: custom policies cannot grant ram: actions; user and policy management comes only with AdministratorAccess", a)
		}
		return fmt.Sprintf("%q: an action is \"*\" or \"cr:<Action>\", e.g. %q or \"cr:Get*\"", a, ActionPullRepository)
	}
	if name == "" {
		return fmt.Sprintf("%q: the action name after \"cr:\" is empty; use \"cr:*\" for every cr action", a)
	}
	wild := false
	for k := 0; k < len(name); k++ {
		c := name[k]
		switch {
		case c == '*' || c == '?':
			wild = true
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		default:
			return fmt.Sprintf("%q: action names are letters, with wildcards '*' and '?'", a)
		}
	}
	if !wild {
		if _, ok := knownCRActions[strings.ToLower(a)]; !ok {
			return fmt.Sprintf("%q is not a Berth action (check the spelling, or use a wildcard such as \"cr:Get*\")", a)
		}
	}
	return ""
}

const resourceForms = `a resource is "*", "acs:cr:<region>:<account>:repository/<namespace>" or "acs:cr:<region>:<account>:repository/<namespace>/<repository>"`

// validateResource returns what is wrong with a resource pattern, or "".
func validateResource(r string) string {
	if r == "*" {
		return ""
	}
	if strings.HasPrefix(r, "acs:cr:") && strings.HasSuffix(r, ":*") {
		return fmt.Sprintf("%q: %s; for everything use \"*\" or \"acs:cr:*:*:repository/*\"", r, resourceForms)
	}
	parts := strings.Split(r, ":")
	if len(parts) != 5 || parts[0] != "acs" || parts[1] != "cr" {
		return fmt.Sprintf("%q: %s", r, resourceForms)
	}
	if msg := checkPart(r, "region", parts[2], false); msg != "" {
		return msg
	}
	if msg := checkPart(r, "account", parts[3], false); msg != "" {
		return msg
	}
	path, ok := strings.CutPrefix(parts[4], "repository/")
	if !ok {
		return fmt.Sprintf("%q: %s", r, resourceForms)
	}
	names := strings.Split(path, "/")
	if len(names) > 2 {
		return fmt.Sprintf("%q: too many path segments after \"repository/\"; %s", r, resourceForms)
	}
	if msg := checkPart(r, "namespace", names[0], true); msg != "" {
		return msg
	}
	if len(names) == 2 {
		if msg := checkPart(r, "repository", names[1], true); msg != "" {
			return msg
		}
	}
	return ""
}

// checkPart checks one part of a resource. Namespace and repository names are
// lower case, so an upper-case letter there could never match and is refused.
func checkPart(r, what, part string, lower bool) string {
	if part == "" {
		return fmt.Sprintf("%q: the %s part is empty (use \"*\" for any); %s", r, what, resourceForms)
	}
	for k := 0; k < len(part); k++ {
		c := part[k]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '*', c == '?':
		case 'A' <= c && c <= 'Z' && !lower:
		case 'A' <= c && c <= 'Z':
			return fmt.Sprintf("%q: %s names are lower case, so %q would never match", r, what, part)
		default:
			return fmt.Sprintf("%q: the %s part %q may hold only letters, digits, '-', '_', '.' and the wildcards '*' and '?'", r, what, part)
		}
	}
	return ""
}
