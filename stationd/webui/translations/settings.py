"""German texts of the settings pages: Network, Communication, Date/Time, Power, GUI,
Authentication, Security, and the key labels and descriptions they show."""

GERMAN = {
    # settings forms
    "read-only": "nur lesbar",
    "write-only": "nur schreibbar",
    "the station connects to the backend again": "die Station verbindet sich neu mit dem Backend",
    "(set: leave empty to keep it)": "(gesetzt: leer lassen, um ihn zu behalten)",
    "(not set)": "(nicht gesetzt)",
    "(none)": "(keine)",
    "On": "Ein",
    "Off": "Aus",
    "from the station config file; applies after a daemon restart":
        "aus der Stations-Konfigurationsdatei; wirkt nach Neustart des Daemons",
    # Network > Interfaces
    "External interface (WAN)": "Externe Schnittstelle (WAN)",
    "A change applies at once; a wrong address can make the station unreachable over this interface (the USB network stays).":
        "Eine Änderung wirkt sofort; eine falsche Adresse kann die Station über diese Schnittstelle unerreichbar machen "
        "(das USB-Netzwerk bleibt).",
    "Mode": "Modus",
    "Auto (DHCP)": "Auto (DHCP)",
    "Manual": "Manuell",
    "Address": "Adresse",
    "Netmask": "Netzmaske",
    "Prefix length": "Präfixlänge",
    "Gateway": "Gateway",
    "Primary DNS": "Primärer DNS",
    "Network status": "Netzwerkstatus",
    "Interface": "Schnittstelle",
    "State": "Zustand",
    "The network settings could not be applied.": "Die Netzwerkeinstellungen konnten nicht angewendet werden.",
    "eth0 for Ethernet, wlan0 for Wi-Fi.": "eth0 für Ethernet, wlan0 für WLAN.",
    "Wi-Fi": "WLAN",
    "Only for a Wi-Fi interface (wlan…); ignored for any other.":
        "Nur für eine WLAN-Schnittstelle (wlan…); bei jeder anderen ignoriert.",
    "SSID (network name)": "SSID (Netzwerkname)",
    "WPA2-Personal": "WPA2-Personal",
    "Open": "Offen",
    "Passphrase": "Passphrase",
    "leave empty to keep the stored passphrase": "leer lassen, um die gespeicherte Passphrase zu behalten",
    "WPA2-Personal: 8 to 63 characters, or the key as 64 hex digits. The station keeps only the key derived from it.":
        "WPA2-Personal: 8 bis 63 Zeichen oder der Schlüssel als 64 Hex-Ziffern. Die Station speichert nur den "
        "daraus abgeleiteten Schlüssel.",
    # Network > Mobile
    "This station has no mobile modem: there is nothing to set here.":
        "Diese Station hat kein Mobilfunkmodem: hier gibt es nichts einzustellen.",
    "Device": "Gerät",
    "Manufacturer": "Hersteller",
    "Model": "Modell",
    "IMEI": "IMEI",
    "Operator": "Betreiber",
    "Signal (RSSI)": "Signal (RSSI)",
    "SIM ICCID": "SIM-ICCID",
    "SIM IMSI": "SIM-IMSI",
    "SIM Data": "SIM-Daten",
    "Service Mode": "Servicemodus",
    "Automatic": "Automatisch",
    "4G only": "nur 4G",
    "3G only": "nur 3G",
    "2G only": "nur 2G",
    "Applied to the modem at once.": "Wird sofort auf das Modem angewendet.",
    "Provider": "Anbieter",
    "A provider fills in APN and authentication method; choose (custom) to set them yourself.":
        "Ein Anbieter füllt APN und Authentifizierungsmethode aus; mit (custom) stellen Sie sie selbst ein.",
    "Authentication Method": "Authentifizierungsmethode",
    "Username": "Benutzername",
    "none": "keine",
    "choose a provider from the list": "wählen Sie einen Anbieter aus der Liste",
    "The mobile settings could not be applied.": "Die Mobilfunkeinstellungen konnten nicht angewendet werden.",
    # Communication > OCPP
    "Server (Central System Service)": "Server (Central System Service)",
    "Charging Station (Charge Point Service)": "Ladestation (Charge Point Service)",
    "Connection": "Verbindung",
    "Protocol Version": "Protokollversion",
    "Server Vendor": "Server-Hersteller",
    "Server Profile": "Server-Profil",
    "Chargebox ID (Template)": "Chargebox ID (Vorlage)",
    "The Chargebox ID cannot be changed here: it is made from the serial number by the Chargebox ID template.":
        "Die Chargebox ID kann hier nicht geändert werden: sie wird mit der Chargebox-ID-Vorlage aus der "
        "Seriennummer gebildet.",
    "The URL comes from the operator profile; a URL set here is used instead until the profile is changed in the "
    "station config file.":
        "Die URL kommt aus dem Betreiberprofil; eine hier gesetzte URL wird stattdessen verwendet, bis das Profil in "
        "der Stations-Konfigurationsdatei geändert wird.",
    "Custom settings": "Benutzerdefinierte Einstellungen",
    "Every configuration key as the backend sees it (GetConfiguration). Edit a key on its own.":
        "Jeder Konfigurationsschlüssel, wie ihn das Backend sieht (GetConfiguration). Einen Schlüssel einzeln ändern.",
    "Key": "Schlüssel",
    "Value": "Wert",
    "Access": "Zugriff",
    "Edit": "Ändern",
    "(write-only)": "(nur schreibbar)",
    "Back to OCPP": "Zurück zu OCPP",
    # Communication > Modbus
    "The station's Modbus TCP server for energy managers; it runs permanently while enabled.":
        "Der Modbus-TCP-Server der Station für Energiemanager; er läuft dauerhaft, solange er aktiviert ist.",
    "Unit id": "Unit-ID",
    # Station > Date/Time
    "Station time (UTC)": "Stationszeit (UTC)",
    "System time zone": "System-Zeitzone",
    "NTP": "NTP",
    "Synchronized": "Synchronisiert",
    "on": "ein",
    "off": "aus",
    "unknown": "unbekannt",
    "yes": "ja",
    "no": "nein",
    "OCPP (every Heartbeat)": "OCPP (bei jedem Heartbeat)",
    "Browser (once)": "Browser (einmalig)",
    "Use the browser's time zone": "Zeitzone des Browsers verwenden",
    "Sets the station's clock to this browser's time now and switches NTP off (time source Browser).":
        "Stellt die Uhr der Station jetzt auf die Zeit dieses Browsers und schaltet NTP aus (Zeitquelle Browser).",
    "Set the time from this browser": "Zeit von diesem Browser übernehmen",
    "The browser sent no time; nothing was changed.": "Der Browser hat keine Zeit gesendet; nichts wurde geändert.",
    "The station's clock was set from the browser.": "Die Uhr der Station wurde vom Browser gestellt.",
    "The station's clock could not be set.": "Die Uhr der Station konnte nicht gestellt werden.",
    # Station > Power
    "Load Balancing": "Lastmanagement",
    "Setting wrong values may cause damage! Ask the electricity supply company for the allowed maximum values.":
        "Falsche Werte können Schäden verursachen! Fragen Sie den Energieversorger nach den zulässigen Höchstwerten.",
    "Ideally 63000 mA are available to the station: each charge point can charge with 22 kW. A lower limit is given "
    "fully to the first charging session and shared when a second one starts.":
        "Im Idealfall stehen der Ladestation 63.000 mA zur Verfügung: jeder Ladepunkt kann mit 22 kW laden. Eine "
        "niedrigere Grenze erhält der erste Ladevorgang ganz; startet ein zweiter, wird sie geteilt.",
    # GUI
    "Station display": "Stationsanzeige",
    "The station's display and lights: these are all the display settings the station has.":
        "Anzeige und Leuchten der Station: das sind alle Anzeigeeinstellungen, die die Station hat.",
    # User Management > Authentication
    "User needs to provide": "Benutzer muss vorweisen",
    "any unknown RFID or a whitelisted RFID": "eine beliebige unbekannte RFID oder eine freigegebene RFID",
    "no RFID (free charging)": "keine RFID (freies Laden)",
    "a whitelisted RFID": "eine freigegebene RFID",
    "choose one of the listed modes": "wählen Sie einen der aufgeführten Modi",
    "Any unknown RFID: online the backend decides, offline any card starts. No RFID: free charging; each session is "
    "authorized with the dummy RFID, which the backend must accept (Expert: Reader). A whitelisted RFID: the local "
    "whitelist first, then the backend.":
        "Beliebige unbekannte RFID: online entscheidet das Backend, offline startet jede Karte. Keine RFID: freies "
        "Laden; jeder Ladevorgang wird mit der Dummy-RFID autorisiert, die das Backend akzeptieren muss (Experte: "
        "Leser). Freigegebene RFID: zuerst die lokale Whitelist, dann das Backend.",
    "Whitelist source": "Quelle der Whitelist",
    "Reader": "Leser",
    "OCPP (managed)": "OCPP (verwaltet)",
    "Local whitelist (offline only)": "Lokale Whitelist (nur offline)",
    # User Management > Security
    "Vendor Access (Maintenance)": "Herstellerzugang (Wartung)",
    "Temporarily enable vendor access for maintenance purpose.":
        "Herstellerzugang vorübergehend für Wartungszwecke freischalten.",
    "Use it only on the manufacturer's instruction and with the customer's consent: it opens the station's operating "
    "system to the vendor (otherwise the warranty may be void). Access ends by itself after one hour, at a reboot and "
    "at a daemon restart.":
        "Nur auf Anweisung des Herstellers und mit Zustimmung des Kunden verwenden: er öffnet dem Hersteller das "
        "Betriebssystem der Station (sonst erlischt möglicherweise die Garantie). Der Zugang endet von selbst nach "
        "einer Stunde, bei einem Neustart des Systems und bei einem Neustart des Daemons.",
    "Vendor access local": "Herstellerzugang lokal",
    "Vendor access remote": "Herstellerzugang fern",
    "Web interface certificate": "Zertifikat der Weboberfläche",
    "Origin": "Herkunft",
    "Subject": "Inhaber",
    "Issuer": "Aussteller",
    "Valid until": "Gültig bis",
    "self-signed": "selbst signiert",
    "uploaded": "hochgeladen",
    "config file": "Konfigurationsdatei",
    "The certificate cannot be read.": "Das Zertifikat kann nicht gelesen werden.",
    "The station config file names the certificate (webui.tls_cert); change it there.":
        "Die Stations-Konfigurationsdatei nennt das Zertifikat (webui.tls_cert); ändern Sie es dort.",
    "Upload your own certificate": "Eigenes Zertifikat hochladen",
    "PEM certificate (chain) and its unencrypted PEM private key, at most {kib} KiB each. New connections get it at "
    "once.":
        "PEM-Zertifikat (Kette) und sein unverschlüsselter privater PEM-Schlüssel, je höchstens {kib} KiB. Neue "
        "Verbindungen erhalten es sofort.",
    "Certificate": "Zertifikat",
    "Private key": "Privater Schlüssel",
    "Certificate installed: new connections get it.": "Zertifikat installiert: neue Verbindungen erhalten es.",
    # key labels
    "Max. Mains Current (mA)": "Max. Netzstrom (mA)",
    "Dummy RFID": "Dummy-RFID",
    "Button stops free charging": "Taster beendet freies Laden",
    "Local": "Lokal",
    "Remote": "Fern",
    "Chargebox ID": "Chargebox ID",
    "Authorization Key": "Authorization Key",
    "URL": "URL",
    "Charging mode": "Lademodus",
    "Grid max. power": "Max. Netzleistung",
    "Max. current limit": "Max. Stromgrenze",
    "Modbus Service": "Modbus-Dienst",
    "Operator name (CPO)": "Betreibername (CPO)",
    "Display language": "Sprache der Anzeige",
    "WebSocket ping interval": "WebSocket-Ping-Intervall",
    "Load balancing algorithm": "Lastmanagement-Algorithmus",
    "Phase balancing": "Phasenausgleich",
    "Phase balancing bound": "Grenze des Phasenausgleichs",
    "Load balancing energy meter address": "Adresse des Lastmanagement-Zählers",
    "Local pre-authorize": "Lokale Vorautorisierung",
    "Authorization cache lifetime": "Lebensdauer des Autorisierungs-Caches",
    "Authorize remote start requests": "Fernstart-Anfragen autorisieren",
    "Master card": "Masterkarte",
    "Security profile": "Sicherheitsprofil",
    "Server mode": "Servermodus",
    "Heartbeat interval": "Heartbeat-Intervall",
    "Retry backoff wait minimum": "Minimale Wartezeit vor erneutem Verbinden",
    "Retry backoff random range": "Zufallsanteil der Wartezeit",
    "Retry repeat times": "Wiederholungen mit Zufallswartezeit",
    "Transaction message attempts": "Sendeversuche von Transaktionsnachrichten",
    "Transaction message retry interval": "Wiederholintervall von Transaktionsnachrichten",
    "Time zone": "Zeitzone",
    "Time source": "Zeitquelle",
    "Light intensity": "Lichtstärke",
    "Blink repeat": "Blinkwiederholungen",
    "Grid voltage": "Netzspannung",
    "Grid phase connection": "Phasenanschluss am Netz",
    "Connector phase rotation": "Phasendrehung der Ladepunkte",
    "Load balancing enabled": "Lastmanagement aktiviert",
    "Load balancing mode": "Lastmanagement-Rolle",
    "Load balancing master URI": "URI des Lastmanagement-Masters",
    "Load balancing charger privilege": "Priorität im Lastmanagement",
    "Load balancing max building": "Max. Strom des Gebäudes",
    "Load balancing max cluster": "Max. Strom des Clusters",
    "Load balancing min cluster": "Min. Strom im Cluster",
    "Load balancing start current": "Startstrom im Lastmanagement",
    "Load balancing fallback current": "Ersatzstrom im Lastmanagement",
    "Load balancing energy meter enabled": "Lastmanagement-Zähler aktiviert",
    "Load balancing energy meter type": "Typ des Lastmanagement-Zählers",
    "Local authorize offline": "Offline lokal autorisieren",
    "Authorization cache enabled": "Autorisierungs-Cache aktiviert",
    "Local auth list enabled": "Lokale Autorisierungsliste aktiviert",
    # key descriptions shown on these pages
    "Backend URL; the chargebox id is appended, or replaces {BoxId} where the URL has it":
        "Backend-URL; die Chargebox ID wird angehängt oder ersetzt {BoxId}, wo die URL es enthält",
    "0: ws, no credentials; 1: ws + HTTP Basic; 2: wss (TLS, server verified) + HTTP Basic; 3: wss with the charge "
    "point certificate as TLS client certificate, no HTTP Basic. A backend may only raise it":
        "0: ws, ohne Zugangsdaten; 1: ws + HTTP Basic; 2: wss (TLS, Server geprüft) + HTTP Basic; 3: wss mit dem "
        "Ladestationszertifikat als TLS-Client-Zertifikat, ohne HTTP Basic. Ein Backend darf es nur erhöhen",
    "Online: connect to the backend; Offline: run stand-alone":
        "Online: mit dem Backend verbinden; Offline: eigenständig betreiben",
    "Chargebox identity: the last path segment of the backend URL":
        "Identität der Chargebox: das letzte Pfadsegment der Backend-URL",
    "HTTP Basic password (user = chargebox id); hex over OCPP, plain text where typed; never read back":
        "HTTP-Basic-Passwort (Benutzer = Chargebox ID); hexadezimal über OCPP, Klartext bei Eingabe; nie auslesbar",
    "The charge point operator's name: the O (organizationName) of the station's certificate signing requests "
    "(SignCertificate); empty: no O":
        "Name des Ladestationsbetreibers: das O (organizationName) der Zertifikatsanfragen der Station "
        "(SignCertificate); leer: kein O",
    "Heartbeat after this much inactivity; at least one a day":
        "Heartbeat nach so langer Inaktivität; mindestens einer am Tag",
    "WebSocket ping interval; a missing pong reconnects; 0 = no pings":
        "WebSocket-Ping-Intervall; ein fehlendes Pong verbindet neu; 0 = keine Pings",
    "Minimum reconnect wait": "Minimale Wartezeit vor dem erneuten Verbinden",
    "Random part of the reconnect wait": "Zufallsanteil der Wartezeit vor dem erneuten Verbinden",
    "Reconnects with random waits before fixed waits": "Neuverbindungen mit Zufallswartezeit vor festen Wartezeiten",
    "Send attempts of a transaction message before it is parked (never dropped)":
        "Sendeversuche einer Transaktionsnachricht, bevor sie zurückgestellt wird (nie verworfen)",
    "Wait between attempts, multiplied by the attempt number": "Wartezeit zwischen Versuchen, mal der Versuchsnummer",
    "Run the station's Modbus TCP server for energy managers (Communication > Modbus; docs/modbus-server.md)":
        "Den Modbus-TCP-Server der Station für Energiemanager betreiben (Kommunikation > Modbus; "
        "docs/modbus-server.md)",
    "Local time zone of the station (display and clock-aligned data)":
        "Lokale Zeitzone der Station (Anzeige und uhrzeitbezogene Messwerte)",
    "Where the clock is set from: NTP, the backend's Heartbeat answers, or the installer's browser (once, WebUI "
    "Station > Date/Time; NTP off)":
        "Woher die Uhr gestellt wird: NTP, die Heartbeat-Antworten des Backends oder einmalig der Browser des "
        "Installateurs (WebUI Station > Datum/Uhrzeit; NTP aus)",
    "Language of the station's display": "Sprache der Stationsanzeige",
    "Brightness of the station's lights": "Helligkeit der Leuchten der Station",
    "How often the station blinks its lights when it signals": "Wie oft die Station beim Signalisieren blinkt",
    "Current per phase the station may draw from the grid, shared by its connectors":
        "Strom pro Phase, den die Station aus dem Netz beziehen darf, geteilt von ihren Ladepunkten",
    "Grid-side maximum power the station may draw; 0 = no power limit":
        "Netzseitige Höchstleistung, die die Station beziehen darf; 0 = keine Leistungsgrenze",
    "Grid voltage (phase to neutral)": "Netzspannung (Phase gegen Neutralleiter)",
    "Order in which the station's L1, L2, L3 meet the grid phases":
        "Reihenfolge, in der L1, L2, L3 der Station auf die Netzphasen treffen",
    "Phase rotation of each connector relative to the grid (0 = station)":
        "Phasendrehung jedes Ladepunkts gegenüber dem Netz (0 = Station)",
    "Station current limit per phase": "Stromgrenze der Station pro Phase",
    "Load balancing on/off": "Lastmanagement ein/aus",
    "Role of this station in the cluster": "Rolle dieser Station im Cluster",
    "URL of the cluster master": "URL des Cluster-Masters",
    "How the cluster shares current: UNIFORM, OPTIMIZED, SUSPENDABLE":
        "Wie der Cluster den Strom teilt: UNIFORM, OPTIMIZED, SUSPENDABLE",
    "Priority of this station: AC05 low, AC10 high": "Priorität dieser Station: AC05 niedrig, AC10 hoch",
    "Current available to the whole building": "Für das ganze Gebäude verfügbarer Strom",
    "Current available to the stations of the cluster": "Für die Stationen des Clusters verfügbarer Strom",
    "Current per station while the external meter is disconnected": "Strom pro Station, solange der externe Zähler getrennt ist",
    "Current limit of a slave until the master assigns one": "Stromgrenze eines Slaves, bis der Master eine zuweist",
    "Current while the cluster link is lost; held 30 s, then 0":
        "Strom bei verlorener Cluster-Verbindung; 30 s gehalten, dann 0",
    "Phase balancing on/off": "Phasenausgleich ein/aus",
    "Largest allowed difference between phases L1, L2, L3": "Größter zulässiger Unterschied zwischen den Phasen L1, L2, L3",
    "Use an external building meter (Modbus TCP)": "Einen externen Gebäudezähler verwenden (Modbus TCP)",
    "External meter make: Janitza or CarloGavazzi": "Hersteller des externen Zählers: Janitza oder CarloGavazzi",
    "Address of the external meter (IP[:port], Modbus TCP)": "Adresse des externen Zählers (IP[:Port], Modbus TCP)",
    "Cards known locally: OCPP = the list the backend manages (SendLocalList); Local = the technician's whitelist "
    "(CSV), used while the backend is unreachable":
        "Lokal bekannte Karten: OCPP = die vom Backend verwaltete Liste (SendLocalList); Lokal = die Whitelist des "
        "Technikers (CSV), genutzt solange das Backend nicht erreichbar ist",
    "idTag each free (Plug&Charge) session is authorized with":
        "idTag, mit dem jeder freie Ladevorgang (Plug&Charge) autorisiert wird",
    "In Plug&Charge mode, the button stops charging": "Im Plug&Charge-Modus beendet der Taster das Laden",
    "Offline, start at once for idTags in the local list or cache":
        "Offline sofort starten für idTags in der lokalen Liste oder im Cache",
    "Online, start at once for idTags valid in the local list or cache":
        "Online sofort starten für idTags, die in der lokalen Liste oder im Cache gültig sind",
    "Remember idTags the backend accepted (authorization cache)":
        "Vom Backend akzeptierte idTags merken (Autorisierungs-Cache)",
    "How long an authorization cache entry stays valid": "Wie lange ein Eintrag im Autorisierungs-Cache gültig bleibt",
    "Use the local authorization list the backend manages":
        "Die vom Backend verwaltete lokale Autorisierungsliste verwenden",
    "RemoteStartTransaction idTags are authorized like a local card first":
        "idTags von RemoteStartTransaction werden zuerst wie eine lokale Karte autorisiert",
    "RFID card that lets local users be added at the station itself":
        "RFID-Karte, mit der lokale Benutzer direkt an der Station hinzugefügt werden",
    "Vendor access to the local Linux terminal": "Herstellerzugang zum lokalen Linux-Terminal",
    "Vendor access over ssh/openvpn": "Herstellerzugang über ssh/openvpn",
}
