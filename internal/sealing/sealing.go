// Package sealing keeps the sensitive content of labelled resources
// sealed in the store. It wraps a store.Store: a write of a resource whose
// meta.security carries a sealed sensitivity category (HIV, PSY, ETH, …)
// stores the resource's clinical content encrypted under that category's
// and patient's keys (package fieldcrypt), with AEAD associated data
// binding it to the resource type, id, version and element; the search
// index keeps references, dates and meta in clear, and replaces token
// values by keyed blind indexes, so that code= searches still work for a
// caller cleared for the category and reveal nothing otherwise.
//
// A read opens what the caller's Clearance (carried in the context)
// covers; anything else comes back redacted — resourceType, id and meta
// with the REDACTED label, without the sensitivity labels — and the
// resource names the withheld categories (store.Resource.Withheld), so
// that the FHIR API can omit or serve it as the site policy says, and
// audit the attempt.
//
// It decides nothing about who is cleared (ClearanceFor does, from the
// token; the FHIR API applies it), never logs, and never puts plaintext,
// key material or the reason a value failed to open in an error.
package sealing

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/fieldcrypt"
)

// Errors returned by the sealed store; test with errors.Is.
var (
	// ErrDamaged is returned for a stored sealed resource that does not
	// open under its keys: tampered, truncated, or copied from another
	// record. Nothing of it is disclosed.
	ErrDamaged = errors.New("sealing: a sealed resource in the store is damaged")
	// ErrForged is returned for a write whose content already carries
	// the sealed member: only this package writes it.
	ErrForged = errors.New("sealing: a resource may not carry the _sealed member")
)

// member is the top-level member holding the sealed content in the
// stored form; it is never served.
const member = "_sealed"

// REDACTED is the label of a redacted resource (HL7 v3
// ObservationValue: "information removed").
const (
	RedactedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	RedactedCode   = "REDACTED"
)

// sensitivitySystem is the code system of the sensitivity labels the
// categories are named by (labels.SensitivitySystem).
const sensitivitySystem = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

var sensitivitySystemBytes = []byte(sensitivitySystem)

// Mode is what the FHIR API does with a resource whose content the caller
// is not cleared for.
type Mode uint8

const (
	// Omit withholds it as if it did not exist (the default: not even
	// its existence is disclosed).
	Omit Mode = iota
	// Redact returns it with its content removed and the REDACTED label.
	Redact
)

// Category configures one sealed sensitivity category.
type Category struct {
	// Elements are the top-level elements sealed; nil seals the whole
	// clinical content (every member but resourceType, id and meta).
	Elements []string
	// StepUp: using the category's key needs a recent multi-factor
	// login (policy.Options.MaxAuthAge) or a break-the-glass reason.
	StepUp bool
	// NoBreakGlass: a break-the-glass reason does not clear the category
	// for a token that lacks its scope.
	NoBreakGlass bool
}

// Policy is the site's sealing policy.
type Policy struct {
	// Categories are the sealed sensitivity codes (v3 ActCode: "HIV").
	// A resource labelled with several is sealed under each in turn, and
	// opens only for a caller cleared for all of them.
	Categories map[string]Category
	// Tenant is the key tenant ("" for the default).
	Tenant string
	// Without is what a caller without clearance gets.
	Without Mode
}

// DefaultCategories are the sensitivity categories sealed by default:
// those the labeller assigns from its value sets.
func DefaultCategories() []string { return []string{"ETH", "GDIS", "HIV", "PSY", "SDV", "SEX"} }

// sorted returns the policy's category codes in order.
func (p Policy) sorted() []string {
	out := make([]string, 0, len(p.Categories))
	for c := range p.Categories {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Clearance is the set of categories a caller may open.
type Clearance struct {
	all  bool
	cats []string // sorted
}

// All clears every category: Warden's own trusted work (import,
// relabelling, the consent loader).
func All() Clearance { return Clearance{all: true} }

// For clears the given categories.
func For(cats ...string) Clearance {
	c := slices.Clone(cats)
	slices.Sort(c)
	return Clearance{cats: slices.Compact(c)}
}

// Covers reports whether c clears cat.
func (c Clearance) Covers(cat string) bool {
	if c.all {
		return true
	}
	_, ok := slices.BinarySearch(c.cats, cat)
	return ok
}

// String lists the cleared categories ("*" for all), for audit.
func (c Clearance) String() string {
	if c.all {
		return "*"
	}
	return strings.Join(c.cats, ",")
}

type clearanceKey struct{}

// WithClearance returns ctx carrying c; the sealed store opens what it
// covers.
func WithClearance(ctx context.Context, c Clearance) context.Context {
	return context.WithValue(ctx, clearanceKey{}, c)
}

// ClearanceFrom returns the clearance ctx carries: none when it carries
// nothing (fail closed).
func ClearanceFrom(ctx context.Context) Clearance {
	c, _ := ctx.Value(clearanceKey{}).(Clearance)
	return c
}

// keys is what the store needs of fieldcrypt.Keys.
type keys interface {
	Seal(ctx context.Context, category, patient string, ad fieldcrypt.AD, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, category, patient string, ad fieldcrypt.AD, sealed []byte) ([]byte, error)
	BlindIndexCode(ctx context.Context, category, tenant, system, code string) (string, error)
	Ready(ctx context.Context, category, tenant, patient string) (bool, error)
	HasCategory(ctx context.Context, category, tenant string) (bool, error)
	Prepare(ctx context.Context, category, tenant, patient string) error
}
