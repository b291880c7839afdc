package smart

// WantsPatientContext reports whether the scopes ask for a patient in
// launch context (SMART 2.2 "Scopes for requesting context data"): true
// when they include launch/patient (a standalone launch asks for a patient
// to be picked), or launch (an EHR launch asks for the context the EHR
// launched the app in, which carries its patient when there is one).
//
// Resource scopes alone never want a context: patient/ scopes without
// launch or launch/patient do not make this true. SMART 2.2 lets the
// server either refuse such a request or infer launch/patient; that choice
// belongs to the authorization server, which finds such requests with
// [Scopes.Contexts]. Without a patient in context, patient/ scopes allow
// nothing.
func (s Scopes) WantsPatientContext() bool {
	return s.Has("launch/patient") || s.Has("launch")
}

// WantsEncounterContext reports whether the scopes ask for an encounter in
// launch context: true when they include launch/encounter, or launch (an
// EHR launch passes the encounter it was launched in, when there is one).
func (s Scopes) WantsEncounterContext() bool {
	return s.Has("launch/encounter") || s.Has("launch")
}

// Contexts reports which contexts appear among the resource scopes:
// patient/, user/ and system/.
func (s Scopes) Contexts() (patient, user, system bool) {
	for _, r := range s.Resources {
		switch r.Context {
		case ContextPatient:
			patient = true
		case ContextUser:
			user = true
		case ContextSystem:
			system = true
		}
	}
	return patient, user, system
}
