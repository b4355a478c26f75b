package agentproto

import "fmt"

// ValidateAgentID reports why id cannot be an agent ID, or nil. Agents and
// masters both check it where an ID enters (the agent's ID file, a
// registration): IDs become path elements, log fields and shell-visible
// names. Master-made IDs are "agent-<hex>"; any name of letters, digits,
// '.', '_' and '-' that starts with a letter or digit, at most 128 bytes,
// is accepted.
func ValidateAgentID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("agent ID %q: want 1 to 128 characters", clip(id))
	}
	for i, c := range id {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '_' && c != '.') {
			return fmt.Errorf("agent ID %q: want letters, digits, '.', '_' and '-', starting with a letter or digit", clip(id))
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
