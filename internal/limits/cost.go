package limits

import "fmt"

// Interaction is a FHIR RESTful interaction (FHIR R4 §3.1.0.1).
type Interaction string

// The interactions the cost model knows.
const (
	Read         Interaction = "read"
	VRead        Interaction = "vread"
	Search       Interaction = "search"
	History      Interaction = "history"
	Create       Interaction = "create"
	Update       Interaction = "update"
	Patch        Interaction = "patch"
	Delete       Interaction = "delete"
	Capabilities Interaction = "capabilities"
	Batch        Interaction = "batch"
	Transaction  Interaction = "transaction"
	Operation    Interaction = "operation" // Request.Operation names it
)

// Request is one FHIR request as the cost model sees it. Counts are what
// the client asked for; Cost clamps them, so a hostile request cannot
// overflow or underflow the cost.
type Request struct {
	Interaction Interaction
	Type        string // resource type; "" at system level
	Operation   string // "$everything", "$export", …; only for Operation
	// Count is the page size (_count, after the server's clamping); 0
	// means the server's default page; Summary a _summary=count or
	// _count=0 search, which returns no resources.
	Count   int
	Summary bool
	// Includes is the number of _include and _revinclude values; Iterate
	// whether any of them is :iterate (FHIR R4 §3.1.1.5.5).
	Includes int
	Iterate  bool
	// Chains is the number of chained parameters and _has parameters:
	// each is a join, and _has is a yes/no oracle worth metering.
	Chains int
	// Entries is the number of entries of a batch or transaction Bundle.
	Entries int
}

// CostModel holds the weights of Cost, in cost units. Default gives the
// documented table (docs/LIMITS.md).
type CostModel struct {
	Read         int `yaml:"read"`          // read, vread
	Capabilities int `yaml:"capabilities"`  // GET metadata
	Write        int `yaml:"write"`         // create, update, patch, delete
	Search       int `yaml:"search"`        // base of a search or history page
	PageUnit     int `yaml:"page_unit"`     // one more unit per this many results asked for
	DefaultCount int `yaml:"default_count"` // page size when Count is 0
	Include      int `yaml:"include"`       // each _include/_revinclude multiplies the page cost by (1 + Includes × Include)
	Iterate      int `yaml:"iterate"`       // :iterate multiplies the whole search cost by this
	Chain        int `yaml:"chain"`         // each chained or _has parameter
	Everything   int `yaml:"everything"`    // Patient/$everything
	Export       int `yaml:"export"`        // $export (bulk data kick-off)
	Operation    int `yaml:"operation"`     // any other operation
	BundleEntry  int `yaml:"bundle_entry"`  // each batch/transaction entry, plus one Write for the bundle
}

// DefaultCosts is the cost table of docs/LIMITS.md.
func DefaultCosts() CostModel {
	return CostModel{
		Read: 1, Capabilities: 1, Write: 2,
		Search: 2, PageUnit: 50, DefaultCount: 20, Include: 1, Iterate: 2, Chain: 2,
		Everything: 50, Export: 500, Operation: 5, BundleEntry: 2,
	}
}

// maxCost caps every cost: far above any burst, far below overflow.
const maxCost = 1_000_000

// Validate refuses weights that would make requests free or negative.
func (m CostModel) Validate() error {
	for _, w := range []struct {
		name string
		v    int
	}{
		{"read", m.Read}, {"capabilities", m.Capabilities}, {"write", m.Write}, {"search", m.Search},
		{"page_unit", m.PageUnit}, {"default_count", m.DefaultCount}, {"iterate", m.Iterate},
		{"everything", m.Everything}, {"export", m.Export}, {"operation", m.Operation},
	} {
		if w.v < 1 || w.v > maxCost {
			return fmt.Errorf("%w: costs.%s is %d; it must be from 1 to %d", ErrInvalidConfig, w.name, w.v, maxCost)
		}
	}
	for _, w := range []struct {
		name string
		v    int
	}{{"include", m.Include}, {"chain", m.Chain}, {"bundle_entry", m.BundleEntry}} {
		if w.v < 0 || w.v > maxCost {
			return fmt.Errorf("%w: costs.%s is %d; it must be from 0 to %d", ErrInvalidConfig, w.name, w.v, maxCost)
		}
	}
	return nil
}

// Cost is the price of r in cost units: at least 1, at most 10^6.
//
//	read, vread, capabilities   Read, Capabilities
//	create/update/patch/delete  Write
//	search, history             (Search + ⌈count/PageUnit⌉) × (1 + Includes×Include)
//	                            × Iterate if :iterate, + Chains×Chain
//	Patient/$everything         Everything;  $export: Export;  other $op: Operation
//	batch, transaction          Write + Entries × BundleEntry
//
// A weight that Validate requires to be at least 1 but is 0 in m is taken
// from DefaultCosts, so a partly filled model never makes requests free;
// Include, Chain and BundleEntry may be 0.
func (m CostModel) Cost(r Request) int {
	d := DefaultCosts()
	pick := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	var c int
	switch r.Interaction {
	case Read, VRead:
		c = pick(m.Read, d.Read)
	case Capabilities:
		c = pick(m.Capabilities, d.Capabilities)
	case Create, Update, Patch, Delete:
		c = pick(m.Write, d.Write)
	case Search, History:
		count := r.Count
		if count <= 0 {
			count = pick(m.DefaultCount, d.DefaultCount)
		}
		if r.Summary {
			count = 0
		}
		count = min(count, maxCost)
		unit := pick(m.PageUnit, d.PageUnit)
		page := pick(m.Search, d.Search) + (count+unit-1)/unit
		inc := min(max(r.Includes, 0), 1000)
		c = page * (1 + inc*max(m.Include, 0))
		if r.Iterate {
			c = min(c, maxCost) * pick(m.Iterate, d.Iterate)
		}
		c = min(c, maxCost) + min(max(r.Chains, 0), 1000)*max(m.Chain, 0)
	case Batch, Transaction:
		c = pick(m.Write, d.Write) + min(max(r.Entries, 0), maxCost)*max(m.BundleEntry, 0)
	case Operation:
		switch r.Operation {
		case "$everything", "everything":
			c = pick(m.Everything, d.Everything)
		case "$export", "export":
			c = pick(m.Export, d.Export)
		default:
			c = pick(m.Operation, d.Operation)
		}
	default:
		// An interaction this model does not know costs what an
		// unknown operation does: never free.
		c = pick(m.Operation, d.Operation)
	}
	return min(max(c, 1), maxCost)
}

// Cost is the price of r under DefaultCosts.
func Cost(r Request) int { return DefaultCosts().Cost(r) }
