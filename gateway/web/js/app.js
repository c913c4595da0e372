// The gateway's page: its views and each role's home, in the shell it shares with the town's page.

import { startShell } from "./shell.js";
import * as alerts from "./views/alerts.js";
import * as audit from "./views/audit.js";
import * as doors from "./views/doors.js";
import * as enrol from "./views/enrol.js";
import * as entries from "./views/entries.js";
import * as person from "./views/person.js";
import * as tenants from "./views/tenants.js";
import * as users from "./views/users.js";
import * as watchlist from "./views/watchlist.js";

startShell({
  views: [entries, alerts, watchlist, tenants, enrol, person, doors, audit, users],
  homes: { admin: "tenants", police: "entries", operator: "doors", auditor: "audit" },
});
