"""German texts of User Management > Users, Software, Station > Components and Station > Connectors."""

GERMAN = {
    # Users (whitelist)
    "Users (RFID Cards)": "Benutzer (RFID-Karten)",
    "CSV Import/Export": "CSV-Import/-Export",
    "CSV file": "CSV-Datei",
    "Processed: {count}": "Verarbeitet: {count}",
    "Imports apply at once, all or nothing: a file with an error changes nothing. Format: the header "
    "UID,GID,Expiry,Authorization, then one card a line, e.g. aec78085,,2030-01-01T12:00:00,accepted (expiry in UTC, "
    "may be empty; accepted or blocked). At most {mib} MiB.":
        "Importe gelten sofort und ganz oder gar nicht: Eine Datei mit einem Fehler ändert nichts. Format: die "
        "Kopfzeile UID,GID,Expiry,Authorization, dann eine Karte pro Zeile, z. B. aec78085,,2030-01-01T12:00:00,accepted "
        "(Ablauf in UTC, darf leer sein; accepted oder blocked). Höchstens {mib} MiB.",
    "Replace the whole whitelist with this file? Cards missing from it are deleted.":
        "Die ganze Whitelist durch diese Datei ersetzen? Karten, die darin fehlen, werden gelöscht.",
    "Nothing was imported; the whitelist is unchanged.": "Nichts wurde importiert; die Whitelist ist unverändert.",
    "Added: {added}, changed: {changed}, unchanged: {unchanged}, deleted: {removed}.":
        "Hinzugefügt: {added}, geändert: {changed}, unverändert: {unchanged}, gelöscht: {removed}.",
    "the saved list as user-export.csv": "die gespeicherte Liste als user-export.csv",
    "Whitelist": "Whitelist",
    "Changes in this table wait for Save; once saved they apply at once (no restart needed). Deleted entries stay "
    "restorable until the daemon restarts.":
        "Änderungen in dieser Tabelle warten auf „Speichern“; gespeichert gelten sie sofort (kein Neustart nötig). "
        "Gelöschte Einträge lassen sich bis zum Neustart des Daemons wiederherstellen.",
    "{count} of {capacity} entries.": "{count} von {capacity} Einträgen.",
    "Hide deleted entries": "Gelöschte Einträge ausblenden",
    "Expiry": "Ablauf",
    "status": "Status",
    "Actions": "Aktionen",
    "unsaved": "nicht gespeichert",
    "The whitelist is empty.": "Die Whitelist ist leer.",
    "Page {page} of {pages}": "Seite {page} von {pages}",
    "Discard": "Verwerfen",
    "{count} unsaved change(s)": "{count} nicht gespeicherte Änderung(en)",
    "Edit card {uid}": "Karte {uid} bearbeiten",
    "Authorization": "Autorisierung",
    "Apply": "Übernehmen",
    "Add a card": "Karte hinzufügen",
    "Add": "Hinzufügen",
    "Added cards wait for Save.": "Hinzugefügte Karten warten auf „Speichern“.",
    "Card {uid} added: unsaved until you press Save.": "Karte {uid} hinzugefügt: nicht gespeichert bis „Speichern“.",
    "Card {uid} changed: unsaved until you press Save.": "Karte {uid} geändert: nicht gespeichert bis „Speichern“.",
    "UID {uid} is already in the list: edit its row instead.":
        "UID {uid} ist schon in der Liste: Bearbeiten Sie stattdessen ihre Zeile.",
    "Saved: {count} change(s).": "Gespeichert: {count} Änderung(en).",
    "Not saved: {problem}": "Nicht gespeichert: {problem}",
    "Unsaved changes discarded.": "Nicht gespeicherte Änderungen verworfen.",
    "Choose a CSV file first.": "Wählen Sie zuerst eine CSV-Datei.",
    "The file is too large: at most {mib} MiB.": "Die Datei ist zu groß: höchstens {mib} MiB.",
    "Accepted": "Akzeptiert",
    "Blocked": "Blockiert",
    "Expired": "Abgelaufen",
    "Deleted": "Gelöscht",
    "accepted": "akzeptiert",
    "blocked": "blockiert",
    "accept": "akzeptieren",
    "block": "blockieren",
    "delete": "löschen",
    "restore": "wiederherstellen",
    # Software
    "Versions": "Versionen",
    "Firmware package": "Firmware-Paket",
    "Station model": "Stationsmodell",
    "EVSE controller": "Ladecontroller",
    "Update": "Update",
    "Update Progress": "Update-Fortschritt",
    "Firmware status": "Firmware-Status",
    "Phase": "Phase",
    "Source": "Quelle",
    "A package built with stationd firmware pack for model {model}; at most {mib} MiB. It is verified first, "
    "installed once no charging session is open, then the station reboots.":
        "Ein mit stationd firmware pack für das Modell {model} gebautes Paket; höchstens {mib} MiB. Es wird zuerst "
        "geprüft, installiert, sobald kein Ladevorgang mehr läuft, dann startet die Station neu.",
    "The firmware upload is shown at the Expert user level (User Profile).":
        "Der Firmware-Upload erscheint in der Benutzerebene Expert (Benutzerprofil).",
    "The package is too large: at most {mib} MiB.": "Das Paket ist zu groß: höchstens {mib} MiB.",
    "Package refused: {reason}": "Paket abgelehnt: {reason}",
    "Package {version} verified: it is installed as soon as no charging session is open, then the station reboots.":
        "Paket {version} geprüft: Es wird installiert, sobald kein Ladevorgang mehr läuft, dann startet die "
        "Station neu.",
    # Components
    "EVSE controllers": "Ladecontroller",
    "Hardware ID": "Hardware-ID",
    "Firmware": "Firmware",
    "Bootloader": "Bootloader",
    "Protocol": "Protokoll",
    "Controller link": "Verbindung zum Controller",
    "Flashing firmware of EVSE controllers should only be necessary right after installation of the main operating "
    "system (OS); OS updates also update the firmware automatically.":
        "Das Flashen der Ladecontroller-Firmware sollte nur direkt nach der Installation des Betriebssystems (OS) "
        "nötig sein; OS-Updates aktualisieren die Firmware automatisch mit.",
    "This will interrupt any charging process! A session in progress refuses the flash unless you tick force, which "
    "ends it first. Make sure all charging processes are stopped gracefully beforehand!":
        "Dies unterbricht jeden Ladevorgang! Ein laufender Ladevorgang verhindert das Flashen, außer Sie setzen "
        "„erzwingen“, das ihn zuerst beendet. Beenden Sie vorher alle Ladevorgänge ordnungsgemäß!",
    "Flash the EVSE controller firmware now?": "Die Firmware der Ladecontroller jetzt flashen?",
    "Controller image": "Controller-Image",
    "At most {mib} MiB. Applies at once; the controllers restart with the new firmware.":
        "Höchstens {mib} MiB. Gilt sofort; die Controller starten mit der neuen Firmware neu.",
    "all": "alle",
    "force (end charging sessions first)": "erzwingen (Ladevorgänge zuerst beenden)",
    "State": "Zustand",
    "idle": "bereit",
    "Last flash": "Letztes Flashen",
    "done": "fertig",
    "failed": "fehlgeschlagen",
    "Flash Firmware started.": "Firmware-Flashen gestartet.",
    "Choose a controller image file first.": "Wählen Sie zuerst eine Controller-Image-Datei.",
    "Unknown connector {id}.": "Unbekannter Ladepunkt {id}.",
    # Connectors
    "Live values, refreshed every 2 s.": "Live-Werte, alle 2 s aktualisiert.",
    "Generic information": "Allgemeine Informationen",
    "Error code": "Fehlercode",
    "CP state": "CP-Zustand",
    "Enabled (operative)": "Aktiviert (betriebsbereit)",
    "Contactor closed": "Schütz geschlossen",
    "Locked": "Verriegelt",
    "Temperature": "Temperatur",
    "Cable rating": "Kabelbelastbarkeit",
    "Session open": "Ladevorgang offen",
    "Meter": "Zähler",
    "Serial / device": "Seriennummer / Gerät",
    "Online": "Online",
    "Offered current per phase": "Angebotener Strom je Phase",
    "Why": "Grund",
    "Limits by source": "Grenzen nach Quelle",
    "Hardware maximum": "Hardware-Maximum",
    "phase(s)": "Phase(n)",
}
