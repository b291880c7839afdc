package validate

import (
	"encoding/xml"
	"io"
	"strings"
)

// xhtmlNS is the namespace of Narrative.div (R4 §2.4.0.1 "Narrative").
const xhtmlNS = "http://www.w3.org/1999/xhtml"

// narrativeElements are the elements txt-1 allows: the HTML 4.0 elements
// of chapters 7-11 (global structure, language, text without ins/del,
// lists, tables) and 15 (alignment, font styles, rules), plus a and img
// (with map and area for image maps). No script, style, form, object,
// iframe or foreign (SVG, MathML) elements.
var narrativeElements = set(
	"div", "span", "h1", "h2", "h3", "h4", "h5", "h6", "address", "bdo",
	"p", "br", "pre", "em", "strong", "dfn", "code", "samp", "kbd", "var", "cite", "abbr", "acronym",
	"blockquote", "q", "sub", "sup",
	"ul", "ol", "li", "dl", "dt", "dd", "dir", "menu",
	"table", "caption", "thead", "tfoot", "tbody", "colgroup", "col", "tr", "th", "td",
	"tt", "i", "b", "big", "small", "strike", "s", "u", "font", "basefont", "hr", "center",
	"a", "img", "map", "area",
)

// narrativeAttributes are the attributes of those elements in HTML 4.0,
// without the event handlers (on*) and form or script attributes.
var narrativeAttributes = set(
	"id", "class", "style", "title", "lang", "dir", // core and i18n
	"align", "valign", "char", "charoff", "span", "width", "height", "border", "cellpadding",
	"cellspacing", "frame", "rules", "summary", "abbr", "axis", "headers", "scope", "rowspan",
	"colspan", "nowrap", "bgcolor", "compact", "type", "start", "value", "color", "face", "size",
	"noshade", "clear", "cite",
	"href", "name", "rel", "rev", "hreflang", "charset", "shape", "coords", "target", "accesskey", "tabindex",
	"src", "alt", "longdesc", "usemap", "ismap", "hspace", "vspace", "nohref",
)

// urlAttributes hold URLs, whose scheme must not run script.
var urlAttributes = set("href", "src", "longdesc", "cite", "usemap")

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// checkNarrative checks Narrative.div (R4 §2.4.0.1, invariant txt-1):
// well-formed XHTML, a single div in the XHTML namespace, only the allowed
// elements and attributes, and no URL that runs script. It returns a
// message, empty when div is valid; the message never contains the
// narrative. It does not enforce txt-2 (some non-whitespace content): four
// of the official examples have empty narratives, and an empty one is
// harmless.
//
// Beyond R4's letter, it refuses what would let a stored narrative run
// script when a browser parses it as HTML: CDATA sections (an HTML parser
// ends them at the first ">"), comments, processing instructions and
// DOCTYPEs.
func checkNarrative(div string) string {
	if strings.Contains(div, "<![CDATA[") {
		return "Narrative must not contain CDATA sections"
	}
	d := xml.NewDecoder(strings.NewReader(div))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "Narrative is not well-formed XHTML"
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 || t.Name.Local != "div" {
					return "Narrative must be a single XHTML div element"
				}
			}
			if t.Name.Space != xhtmlNS {
				return "Narrative elements must be in the XHTML namespace"
			}
			if !narrativeElements[t.Name.Local] {
				return "Narrative uses an element that R4 does not allow (txt-1)"
			}
			for _, a := range t.Attr {
				if msg := checkNarrativeAttr(a); msg != "" {
					return msg
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && !isBlank(string(t)) {
				return "Narrative must be a single XHTML div element"
			}
		default: // comments, processing instructions, directives
			return "Narrative must not contain comments, processing instructions or DOCTYPEs"
		}
	}
	if roots == 0 {
		return "Narrative must be a single XHTML div element"
	}
	return ""
}

func checkNarrativeAttr(a xml.Attr) string {
	switch {
	case a.Name.Space == "" && a.Name.Local == "xmlns", a.Name.Space == "xmlns":
		return "" // namespace declarations; elements outside XHTML are refused
	case a.Name.Space == "http://www.w3.org/XML/1998/namespace" && a.Name.Local == "lang":
		return ""
	case a.Name.Space != "" || !narrativeAttributes[a.Name.Local]:
		return "Narrative uses an attribute that R4 does not allow (txt-1)"
	case urlAttributes[a.Name.Local] && scriptURL(a.Value, a.Name.Local == "src"):
		return "Narrative links must not run script"
	}
	return ""
}

// scriptURL reports a URL whose scheme runs script or embeds a document:
// javascript:, vbscript:, data: (except an image as an image source).
// Browsers drop ASCII whitespace and control characters inside a scheme,
// so this does too.
func scriptURL(u string, imageSource bool) bool {
	var b strings.Builder
	for i := 0; i < len(u) && b.Len() < 16; i++ {
		c := u[i]
		switch {
		case c <= ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	s := b.String()
	return strings.HasPrefix(s, "javascript:") || strings.HasPrefix(s, "vbscript:") ||
		strings.HasPrefix(s, "data:") && !(imageSource && strings.HasPrefix(s, "data:image/"))
}
