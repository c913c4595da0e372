// The town platform's page: the gateway page's shell, framework and catalogue (served from the gateway's
// own folder under /js and /i18n), with the town's views: the fleet, entries and alerts of every building,
// a person's whereabouts, the register (tenants with their building, enrolment), the watch list; the
// audit log and users are the gateway's own screens.

import { startShell } from "/js/shell.js";
import * as audit from "/js/views/audit.js";
import * as users from "/js/views/users.js";
import * as alerts from "./views/alerts.js";
import * as enrol from "./views/enrol.js";
import * as entries from "./views/entries.js";
import * as fleet from "./views/fleet.js";
import * as people from "./views/people.js";
import * as person from "./views/person.js";
import * as tenants from "./views/tenants.js";
import * as watch from "./views/watch.js";

startShell({
  views: [fleet, entries, people, alerts, watch, tenants, enrol, person, audit, users],
  homes: { admin: "fleet", police: "entries", operator: "fleet", auditor: "audit" },
  titleKey: "town.title",
});
