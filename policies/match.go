package policies

import "strings"

// pattern is a wildcard pattern compiled once so that matching needs neither
// regexp nor allocation. '*' matches any run of bytes (including '/' and ':'),
// '?' exactly one byte. Patterns are split on '*' into segments: the first
// segment is anchored at the start, the last at the end, and the ones between
// are found left to right, which is optimal because every segment has a fixed
// length.
type pattern struct {
	kind patternKind
	// lit is the whole pattern for exact, the part before '*' for prefix.
	lit string
	// segs are the '*'-separated segments for general; segs[0] is anchored at
	// the start and segs[len-1] at the end (either may be empty).
	segs []segment
	// minLen is the fewest bytes a matching string can have.
	minLen int
	// fold compares ASCII letters case-insensitively (actions). The pattern
	// is stored lower-cased, so only the subject needs folding.
	fold bool
}

// segment is a run of a pattern between '*'s. To find it quickly inside a
// subject, search for its anchor, its longest run without '?', which sits at
// offset off within the segment, and then check the rest.
type segment struct {
	lit    string
	anchor string
	off    int
	hasQ   bool
}

type patternKind uint8

const (
	kindAny     patternKind = iota // only '*'s: matches everything
	kindExact                      // no wildcard
	kindPrefix                     // "lit*", no '?'
	kindGeneral                    // anything else
)

func compilePattern(p string, fold bool) pattern {
	if fold {
		p = asciiLower(p)
	}
	pt := pattern{fold: fold}
	star := strings.IndexByte(p, '*')
	hasQ := strings.IndexByte(p, '?') >= 0
	switch {
	case strings.Trim(p, "*") == "" && p != "":
		pt.kind = kindAny
		return pt
	case star < 0 && !hasQ:
		pt.kind, pt.lit, pt.minLen = kindExact, p, len(p)
		return pt
	case !hasQ && strings.Trim(p[star:], "*") == "":
		pt.kind, pt.lit, pt.minLen = kindPrefix, p[:star], star
		return pt
	}
	pt.kind = kindGeneral
	parts := strings.Split(p, "*")
	if len(parts) > 2 {
		// Runs of '*' leave empty middle segments; they constrain nothing.
		kept := []string{parts[0]}
		for _, s := range parts[1 : len(parts)-1] {
			if s != "" {
				kept = append(kept, s)
			}
		}
		parts = append(kept, parts[len(parts)-1])
	}
	pt.segs = make([]segment, len(parts))
	for i, lit := range parts {
		pt.segs[i] = newSegment(lit)
		pt.minLen += len(lit)
	}
	return pt
}

func newSegment(lit string) segment {
	seg := segment{lit: lit, anchor: lit, hasQ: strings.IndexByte(lit, '?') >= 0}
	if !seg.hasQ {
		return seg
	}
	seg.anchor = ""
	for start := 0; start < len(lit); {
		end := strings.IndexByte(lit[start:], '?')
		if end < 0 {
			end = len(lit)
		} else {
			end += start
		}
		if end-start > len(seg.anchor) {
			seg.anchor, seg.off = lit[start:end], start
		}
		start = end + 1
	}
	return seg
}

func (p *pattern) match(s string) bool {
	switch p.kind {
	case kindAny:
		return true
	case kindExact:
		return len(s) == len(p.lit) && p.eq(s, p.lit)
	case kindPrefix:
		return len(s) >= len(p.lit) && p.eq(s[:len(p.lit)], p.lit)
	}
	if len(s) < p.minLen {
		return false
	}
	segs := p.segs
	if len(segs) == 1 { // no '*': only '?' wildcards
		return len(s) == len(segs[0].lit) && p.eq(s, segs[0].lit)
	}
	first, last := segs[0].lit, segs[len(segs)-1].lit
	if !p.eq(s[:len(first)], first) || !p.eq(s[len(s)-len(last):], last) {
		return false
	}
	rest := s[len(first) : len(s)-len(last)]
	for i := 1; i < len(segs)-1; i++ {
		seg := &segs[i]
		j := p.index(rest, seg)
		if j < 0 {
			return false
		}
		rest = rest[j+len(seg.lit):]
	}
	return true
}

// eq compares equal-length s and the pattern text seg, where '?' in seg
// matches any byte.
func (p *pattern) eq(s, seg string) bool {
	if !p.fold {
		for i := 0; i < len(seg); i++ {
			if s[i] != seg[i] && seg[i] != '?' {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(seg); i++ {
		if lower(s[i]) != seg[i] && seg[i] != '?' {
			return false
		}
	}
	return true
}

// index finds the leftmost place seg matches in s, or -1.
func (p *pattern) index(s string, seg *segment) int {
	if !seg.hasQ && !p.fold {
		return strings.Index(s, seg.lit)
	}
	// Candidate starts are where the anchor occurs, shifted back by its
	// offset within the segment.
	for from := seg.off; from+len(seg.lit)-seg.off <= len(s); from++ {
		k := p.indexAnchor(s[from:], seg.anchor)
		if k < 0 {
			return -1
		}
		start := from + k - seg.off
		if start+len(seg.lit) > len(s) {
			return -1
		}
		if p.eq(s[start:start+len(seg.lit)], seg.lit) {
			return start
		}
		from += k
	}
	return -1
}

// indexAnchor finds the leftmost occurrence of a '?'-free literal.
func (p *pattern) indexAnchor(s, lit string) int {
	if !p.fold {
		return strings.Index(s, lit)
	}
	if lit == "" {
		return 0
	}
	for i := 0; i+len(lit) <= len(s); i++ {
		if lower(s[i]) == lit[0] && p.eq(s[i:i+len(lit)], lit) {
			return i
		}
	}
	return -1
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lower(b[j])
			}
			return string(b)
		}
	}
	return s
}
