package console

import (
	"html"
	"html/template"
	"net/url"
	"regexp"
	"strings"
)

// renderMarkdown renders a repository description: a small, safe subset of Markdown (headings, paragraphs,
// bullet and numbered lists, fenced code, inline code, bold, italic, and http(s) links). Raw HTML is not
// interpreted: every character of the source is escaped first, and markup is made only from the escaped text.
func renderMarkdown(src string) template.HTML {
	var b strings.Builder
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var para []string
	list := "" // "ul" or "ol" while inside a list
	flushPara := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + inline(strings.Join(para, " ")) + "</p>\n")
			para = nil
		}
	}
	closeList := func() {
		if list != "" {
			b.WriteString("</" + list + ">\n")
			list = ""
		}
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "```"):
			flushPara()
			closeList()
			b.WriteString("<pre><code>")
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				b.WriteString(html.EscapeString(lines[i]) + "\n")
			}
			b.WriteString("</code></pre>\n")
		case trim == "":
			flushPara()
			closeList()
		case headingRE.MatchString(trim):
			flushPara()
			closeList()
			m := headingRE.FindStringSubmatch(trim)
			lvl := len(m[1]) + 2 // the page has h1 and h2 already
			if lvl > 6 {
				lvl = 6
			}
			tag := string(rune('0' + lvl))
			b.WriteString("<h" + tag + ">" + inline(m[2]) + "</h" + tag + ">\n")
		case bulletRE.MatchString(trim), numberRE.MatchString(trim):
			flushPara()
			kind, re := "ul", bulletRE
			if numberRE.MatchString(trim) {
				kind, re = "ol", numberRE
			}
			if list != kind {
				closeList()
				b.WriteString("<" + kind + ">\n")
				list = kind
			}
			b.WriteString("<li>" + inline(re.ReplaceAllString(trim, "")) + "</li>\n")
		default:
			closeList()
			para = append(para, trim)
		}
	}
	flushPara()
	closeList()
	return template.HTML(b.String()) //nolint:gosec // built only from escaped text
}

var (
	headingRE = regexp.MustCompile(`^(#{1,6})\s+(.*)$`)
	bulletRE  = regexp.MustCompile(`^[-*+]\s+`)
	numberRE  = regexp.MustCompile(`^\d{1,9}[.)]\s+`)
	codeRE    = regexp.MustCompile("`([^`]+)`")
	linkRE    = regexp.MustCompile(`\[([^\]]+)\]\(([^)\s]+)\)`)
	boldRE    = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	italicRE  = regexp.MustCompile(`(^|[\s(])\*([^*\s][^*]*)\*`)
)

// inline renders one block's text: escaped first, then code spans, links, bold and italic made from it.
func inline(s string) string {
	// Code spans are cut out first so nothing inside them is rendered.
	s = strings.ReplaceAll(s, "\x00", "")
	var codes []string
	s = codeRE.ReplaceAllStringFunc(s, func(m string) string {
		codes = append(codes, "<code>"+html.EscapeString(m[1:len(m)-1])+"</code>")
		return "\x00" + string(rune('a'+len(codes)-1)) + "\x00"
	})
	s = html.EscapeString(s)
	s = linkRE.ReplaceAllStringFunc(s, func(m string) string {
		p := linkRE.FindStringSubmatch(m)
		raw := html.UnescapeString(p[2])
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return m
		}
		return `<a href="` + html.EscapeString(u.String()) + `" rel="nofollow noopener noreferrer">` + p[1] + `</a>`
	})
	s = boldRE.ReplaceAllString(s, "<strong>$1</strong>")
	s = italicRE.ReplaceAllString(s, "$1<em>$2</em>")
	for i, c := range codes {
		s = strings.Replace(s, "\x00"+string(rune('a'+i))+"\x00", c, 1)
	}
	return s
}
