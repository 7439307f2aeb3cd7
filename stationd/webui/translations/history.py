"""German texts of the History pages (Sessions, Charts) and the Diagnostics pages (OCPP Log,
Dead Letters)."""

GERMAN = {
    # Sessions
    "From (UTC)": "Von (UTC)",
    "To (UTC)": "Bis (UTC)",
    "idTag": "idTag",
    "all": "alle",
    "{count} sessions": "{count} Ladevorgänge",
    "Session": "Ladevorgang",
    "Transaction": "Transaktion",
    "Start": "Beginn",
    "End": "Ende",
    "Duration": "Dauer",
    "anonymous": "anonym",
    "RFID": "RFID",
    "Meter start (kWh)": "Zählerstand Beginn (kWh)",
    "Meter stop (kWh)": "Zählerstand Ende (kWh)",
    "Stop reason": "Beendigungsgrund",
    "charging": "lädt",
    "No sessions.": "Keine Ladevorgänge.",
    "Pages": "Seiten",
    "Previous": "Zurück",
    "Next": "Weiter",
    "Page {page} of {pages}": "Seite {page} von {pages}",
    "Times in UTC. Anonymous: free charging with the dummy idTag; RFID: a card.":
        "Zeiten in UTC. Anonym: freies Laden mit der Dummy-idTag; RFID: eine Karte.",
    "A date as YYYY-MM-DD.": "Ein Datum als JJJJ-MM-TT.",
    "The end date is before the start date.": "Das Enddatum liegt vor dem Anfangsdatum.",
    "No such connector.": "Diesen Ladepunkt gibt es nicht.",
    "An idTag has at most 20 characters.": "Eine idTag hat höchstens 20 Zeichen.",
    # Charts
    "Power and energy of the last {minutes} minutes, per connector.":
        "Leistung und Energie der letzten {minutes} Minuten, je Ladepunkt.",
    "Power and energy of connector {id}": "Leistung und Energie von Ladepunkt {id}",
    "Power (kW)": "Leistung (kW)",
    "No meter samples yet.": "Noch keine Zählerwerte.",
    # OCPP Log
    "Expert level": "Experten-Modus",
    "This page needs the Expert user level (User Profile).":
        "Diese Seite erfordert den Benutzer-Level Experte (Benutzerprofil).",
    "Action": "Aktion",
    "Frames": "Nachrichten",
    "Newest first; refreshed every 2 s. Secrets are masked.":
        "Neueste zuerst; alle 2 s aktualisiert. Geheimnisse sind maskiert.",
    "from the backend": "vom Backend",
    "to the backend": "an das Backend",
    "Time": "Zeit",
    "Direction": "Richtung",
    "Type": "Typ",
    "Frame": "Nachricht",
    "No frames.": "Keine Nachrichten.",
    # Dead Letters
    "Messages the backend kept refusing are parked here, never dropped. The station does not send them again by itself.":
        "Nachrichten, die das Backend wiederholt abgelehnt hat, werden hier abgelegt und nie verworfen. "
        "Die Station sendet sie nicht von selbst erneut.",
    "Dead letters: {count}": "Unzustellbare Nachrichten: {count}",
    "Queued transaction messages: {count}": "Wartende Transaktionsnachrichten: {count}",
    "Queued security events: {count}": "Wartende Sicherheitsereignisse: {count}",
    "Created": "Erstellt",
    "Parked": "Abgelegt",
    "Attempts": "Versuche",
    "Last error": "Letzter Fehler",
    "Message": "Nachricht",
    "No dead letters.": "Keine unzustellbaren Nachrichten.",
    "Send again: the ticked messages go to the end of the queue (a StartTransaction takes its session's parked messages along). Discard: they are deleted for good.":
        "Erneut senden: Die markierten Nachrichten kommen ans Ende der Warteschlange (eine StartTransaction nimmt die "
        "geparkten Nachrichten ihres Ladevorgangs mit). Verwerfen: Sie werden endgültig gelöscht.",
    "Send again": "Erneut senden",
    "Discard": "Verwerfen",
    "Delete the ticked messages for good? The backend will never receive them.":
        "Die markierten Nachrichten endgültig löschen? Das Backend erhält sie dann nie.",
    "Tick the messages first.": "Bitte zuerst Nachrichten markieren.",
    "Nothing was queued: {problem}": "Nichts wurde eingereiht: {problem}",
    "Queued again: {count} message(s).": "Erneut eingereiht: {count} Nachricht(en).",
    "Discarded: {count} message(s).": "Verworfen: {count} Nachricht(en).",
}
