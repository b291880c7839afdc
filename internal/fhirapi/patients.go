package fhirapi

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
)

// PatientChoice is one patient offered by the authorization server's
// patient picker.
type PatientChoice struct {
	ID    string
	Label string
}

// PatientLabel returns how the patient picker names a patient ("Jane
// Doe, born 1970-01-01"). It reads with the whole store: the
// authorization server calls it only for patients the signed-in user may
// choose, and shows the label to that user only.
func (a *API) PatientLabel(ctx context.Context, id string) (string, error) {
	res, err := a.store.Read(ctx, "Patient", id)
	if err != nil {
		return "", err
	}
	return patientLabel(res.JSON), nil
}

// SearchPatients finds at most limit patients by name for the picker of
// a practitioner's launch.
func (a *API) SearchPatients(ctx context.Context, name string, limit int) ([]PatientChoice, error) {
	limit = max(limit, 1)
	vals := url.Values{"name": {name}, "_sort": {"family"}}
	q, err := a.parseQuery("Patient", vals, search.Options{DefaultCount: limit, MaxCount: limit})
	if err != nil {
		return nil, err
	}
	res, err := a.store.Search(ctx, q, store.PageRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]PatientChoice, 0, len(res.Matches))
	for _, m := range res.Matches {
		out = append(out, PatientChoice{ID: m.ID, Label: patientLabel(m.JSON)})
	}
	return out, nil
}

// patientLabel is "Given Family, born YYYY-MM-DD" from a Patient's first
// name (official if there is one).
func patientLabel(body []byte) string {
	var p struct {
		ID   string `json:"id"`
		Name []struct {
			Use    string   `json:"use"`
			Text   string   `json:"text"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		BirthDate string `json:"birthDate"`
	}
	if json.Unmarshal(body, &p) != nil {
		return "Patient"
	}
	label := ""
	for i, n := range p.Name {
		if i > 0 && n.Use != "official" {
			continue
		}
		label = n.Text
		if label == "" {
			label = strings.TrimSpace(strings.Join(append(append([]string{}, n.Given...), n.Family), " "))
		}
		if n.Use == "official" {
			break
		}
	}
	if label == "" {
		label = "Patient " + p.ID
	}
	if p.BirthDate != "" {
		label += ", born " + p.BirthDate
	}
	return label
}
