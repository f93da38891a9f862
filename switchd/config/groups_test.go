package config

import (
	"strings"
	"testing"
)

// groupsDoc is examples/policy.yaml with groups web (id 10) and db (id dbID; webSel its selector).
func groupsDoc(t *testing.T, dbID any, webSel string) map[string]any {
	m := policyDoc(t)
	g := func(name string, id any, sel string) any {
		return map[string]any{"name": name, "config": map[string]any{"name": name, "id": id, "selector": sel}}
	}
	at(t, m, "switchd:switchd", "workload-policy")["groups"] = map[string]any{"group": []any{
		g("web", 10, webSel), g("db", dbID, `app == "db"`),
	}}
	return m
}

func TestGroupsTranslate(t *testing.T) {
	in, err := parseDoc(t, groupsDoc(t, 20, `app == "web"`))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Groups) != 2 || in.Groups[0].Name != "db" || in.Groups[0].ID != 20 ||
		in.Groups[1].Name != "web" || in.Groups[1].ID != 10 || in.Groups[1].Selector.String() != `app == "web"` {
		t.Errorf("groups %+v", in.Groups)
	}
}

// TestParseRejectsGroup: a group without a usable id or selector is
// refused at its leaf.
func TestParseRejectsGroup(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		id         any
		sel        string
	}{
		{"duplicate id", "group[name=web]/config/id: id 10 is group db's too", 10, `app == "web"`},
		{"bad selector", "group[name=web]/config/selector", 20, `app ==`},
		{"docker id range", "group[name=db]/config/id", uint32(1) << 31, `app == "web"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDoc(t, groupsDoc(t, tc.id, tc.sel))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestGroupWarnings: a peer selector that is a group's selector draws no
// warning, one that is not is named by its path.
func TestGroupWarnings(t *testing.T) {
	for _, tc := range []struct {
		webSel string
		warn   bool
	}{{`role == "web"`, false}, {`app == "web"`, true}} {
		in, err := parseDoc(t, groupsDoc(t, 20, tc.webSel))
		if err != nil {
			t.Fatal(err)
		}
		ws := GroupWarnings(in)
		if got := len(ws) > 0; got != tc.warn || tc.warn && !strings.Contains(ws[0], "peer-selector: peer selector role == \"web\" is no group's") {
			t.Errorf("group web selecting %s: warnings %q, want some: %v", tc.webSel, ws, tc.warn)
		}
	}
}
