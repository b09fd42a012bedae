package dashboardtest

import (
	"strings"

	"golang.org/x/net/html"
)

// Element is one element of a dumped page: its attributes and its text.
type Element struct {
	Tag  string
	Attr map[string]string
	Text string
}

// Find returns the elements of the HTML page whose data-testid is testid,
// in document order.
func Find(page, testid string) []Element {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return nil
	}
	var out []Element
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := map[string]string{}
			for _, a := range n.Attr {
				attr[a.Key] = a.Val
			}
			if attr["data-testid"] == testid {
				out = append(out, Element{Tag: n.Data, Attr: attr, Text: text(n)})
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// FindWhere returns the elements Find returns whose attributes have the
// given values (pairs of name, value).
func FindWhere(page, testid string, attrs ...string) []Element {
	var out []Element
next:
	for _, e := range Find(page, testid) {
		for i := 0; i+1 < len(attrs); i += 2 {
			if e.Attr[attrs[i]] != attrs[i+1] {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// Tags counts the elements of the page with the tag name, anywhere.
func Tags(page, tag string) int {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return 0
	}
	n := 0
	var walk func(*html.Node)
	walk = func(x *html.Node) {
		if x.Type == html.ElementNode && x.Data == tag {
			n++
		}
		for c := x.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return n
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(x *html.Node) {
		if x.Type == html.TextNode {
			b.WriteString(x.Data)
			b.WriteByte(' ')
		}
		for c := x.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}
