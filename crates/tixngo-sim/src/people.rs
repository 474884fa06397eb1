//! The organizer's audience: names from a dozen cultures and their e-mail addresses.

use crate::json::JsonObject;
use crate::rng::Rng;

/// A given name as written, its ASCII form for e-mail addresses, and the usual title.
type GivenName = (&'static str, &'static str, &'static str);
/// A family name as written and its ASCII form.
type FamilyName = (&'static str, &'static str);

struct Culture {
    /// ISO 3166-1 alpha-3, used for nationality and (mostly) residence.
    country: &'static str,
    /// ISO 639-1.
    language: &'static str,
    phone_prefix: &'static str,
    given: &'static [GivenName],
    family: &'static [FamilyName],
}

const CULTURES: &[Culture] = &[
    Culture {
        country: "ESP",
        language: "es",
        phone_prefix: "+34",
        given: &[
            ("José", "jose", "Mr"),
            ("María", "maria", "Ms"),
            ("Lucía", "lucia", "Ms"),
            ("Álvaro", "alvaro", "Mr"),
            ("Iñigo", "inigo", "Mr"),
        ],
        family: &[
            ("Núñez", "nunez"),
            ("García", "garcia"),
            ("Muñoz", "munoz"),
            ("Peña", "pena"),
        ],
    },
    Culture {
        country: "DEU",
        language: "de",
        phone_prefix: "+49",
        given: &[
            ("Zoë", "zoe", "Ms"),
            ("Jürgen", "juergen", "Mr"),
            ("Lena", "lena", "Ms"),
            ("Matthias", "matthias", "Mr"),
        ],
        family: &[
            ("Müller", "mueller"),
            ("Schröder", "schroeder"),
            ("Weiß", "weiss"),
            ("Becker", "becker"),
        ],
    },
    Culture {
        country: "POL",
        language: "pl",
        phone_prefix: "+48",
        given: &[
            ("Łukasz", "lukasz", "Mr"),
            ("Agnieszka", "agnieszka", "Ms"),
            ("Paweł", "pawel", "Mr"),
            ("Zofia", "zofia", "Ms"),
        ],
        family: &[
            ("Wójcik", "wojcik"),
            ("Kowalski", "kowalski"),
            ("Dąbrowska", "dabrowska"),
            ("Żak", "zak"),
        ],
    },
    Culture {
        country: "NOR",
        language: "no",
        phone_prefix: "+47",
        given: &[
            ("Søren", "soren", "Mr"),
            ("Åse", "ase", "Ms"),
            ("Ingrid", "ingrid", "Ms"),
            ("Bjørn", "bjorn", "Mr"),
        ],
        family: &[
            ("Ødegård", "odegard"),
            ("Hansen", "hansen"),
            ("Løvås", "lovas"),
            ("Berg", "berg"),
        ],
    },
    Culture {
        country: "FRA",
        language: "fr",
        phone_prefix: "+33",
        given: &[
            ("Chloé", "chloe", "Ms"),
            ("Élodie", "elodie", "Ms"),
            ("François", "francois", "Mr"),
            ("Hugo", "hugo", "Mr"),
        ],
        family: &[
            ("Lefèvre", "lefevre"),
            ("Dubois", "dubois"),
            ("Bérenger", "berenger"),
            ("Rousseau", "rousseau"),
        ],
    },
    Culture {
        country: "TUR",
        language: "tr",
        phone_prefix: "+90",
        given: &[
            ("İbrahim", "ibrahim", "Mr"),
            ("Ayşe", "ayse", "Ms"),
            ("Çağla", "cagla", "Ms"),
            ("Mehmet", "mehmet", "Mr"),
        ],
        family: &[
            ("Yılmaz", "yilmaz"),
            ("Öztürk", "ozturk"),
            ("Şahin", "sahin"),
            ("Çelik", "celik"),
        ],
    },
    Culture {
        country: "JPN",
        language: "ja",
        phone_prefix: "+81",
        given: &[
            ("太郎", "taro", "Mr"),
            ("花子", "hanako", "Ms"),
            ("健", "ken", "Mr"),
            ("さくら", "sakura", "Ms"),
        ],
        family: &[
            ("山田", "yamada"),
            ("佐藤", "sato"),
            ("鈴木", "suzuki"),
            ("高橋", "takahashi"),
        ],
    },
    Culture {
        country: "GRC",
        language: "el",
        phone_prefix: "+30",
        given: &[
            ("Γιώργος", "giorgos", "Mr"),
            ("Ελένη", "eleni", "Ms"),
            ("Νίκος", "nikos", "Mr"),
            ("Δήμητρα", "dimitra", "Ms"),
        ],
        family: &[
            ("Παπαδόπουλος", "papadopoulos"),
            ("Οικονόμου", "oikonomou"),
            ("Γεωργίου", "georgiou"),
        ],
    },
    Culture {
        country: "EGY",
        language: "ar",
        phone_prefix: "+20",
        given: &[
            ("محمد", "mohamed", "Mr"),
            ("فاطمة", "fatma", "Ms"),
            ("يوسف", "youssef", "Mr"),
        ],
        family: &[("حسن", "hassan"), ("علي", "ali"), ("إبراهيم", "ibrahim")],
    },
    Culture {
        country: "IRL",
        language: "en",
        phone_prefix: "+353",
        given: &[
            ("Seán", "sean", "Mr"),
            ("Siobhán", "siobhan", "Ms"),
            ("Aoife", "aoife", "Ms"),
            ("Cian", "cian", "Mr"),
        ],
        family: &[
            ("O'Brien", "obrien"),
            ("Ní Bhriain", "nibhriain"),
            ("Murphy", "murphy"),
            ("Walsh", "walsh"),
        ],
    },
    Culture {
        country: "BRA",
        language: "pt",
        phone_prefix: "+55",
        given: &[
            ("João", "joao", "Mr"),
            ("Luíza", "luiza", "Ms"),
            ("Ana", "ana", "Ms"),
            ("Thiago", "thiago", "Mr"),
        ],
        family: &[
            ("Gonçalves", "goncalves"),
            ("Araújo", "araujo"),
            ("Silva", "silva"),
            ("Conceição", "conceicao"),
        ],
    },
    Culture {
        country: "CHE",
        language: "de",
        phone_prefix: "+41",
        given: &[
            ("Léa", "lea", "Ms"),
            ("Noah", "noah", "Mr"),
            ("Luca", "luca", "Mr"),
            ("Anna", "anna", "Ms"),
        ],
        family: &[
            ("Rüegg", "rueegg"),
            ("Meier", "meier"),
            ("Favre", "favre"),
            ("Bianchi", "bianchi"),
        ],
    },
    Culture {
        country: "GBR",
        language: "en",
        phone_prefix: "+44",
        given: &[
            ("Oliver", "oliver", "Mr"),
            ("Amelia", "amelia", "Ms"),
            ("Harry", "harry", "Mr"),
            ("Isla", "isla", "Ms"),
        ],
        family: &[
            ("Smith", "smith"),
            ("Jones", "jones"),
            ("Taylor-Wood", "taylorwood"),
            ("Brown", "brown"),
        ],
    },
];

const EMAIL_DOMAINS: [&str; 3] = ["example.org", "example.com", "example.net"];

/// One person of the organizer's audience: a buyer, a transfer recipient or a ticket holder.
pub(crate) struct Spectator {
    title: &'static str,
    first_name: &'static str,
    last_name: &'static str,
    /// The canonical (lowercase, trimmed) address; see [`Organizer::email_as_sent`].
    pub(crate) email: String,
    date_of_birth: String,
    nationality: &'static str,
    id_card_number: String,
    phone_number: String,
    residence_country: &'static str,
    language: &'static str,
    allow_promo_email: bool,
    allow_third_party_email: bool,
}

impl Spectator {
    pub(crate) fn generate(rng: &mut Rng, number: usize) -> Spectator {
        let culture = rng.pick(CULTURES);
        let &(first_name, first_ascii, usual_title) = rng.pick(culture.given);
        let &(last_name, last_ascii) = rng.pick(culture.family);
        let title = if rng.percent(5) { "Dr" } else { usual_title };
        let domain = EMAIL_DOMAINS[number % EMAIL_DOMAINS.len()];
        let residence_country = if rng.percent(15) {
            rng.pick(CULTURES).country
        } else {
            culture.country
        };
        let id_letters: String = (0..2)
            .map(|_| char::from(b'A' + rng.below(26) as u8))
            .collect();
        Spectator {
            title,
            first_name,
            last_name,
            // The number keeps addresses unique while names repeat.
            email: format!("{first_ascii}.{last_ascii}.{number}@{domain}"),
            date_of_birth: format!(
                "{:04}-{:02}-{:02}",
                rng.between(1945, 2010),
                rng.between(1, 12),
                rng.between(1, 28)
            ),
            nationality: culture.country,
            id_card_number: format!("{id_letters}{:07}", rng.below(10_000_000)),
            phone_number: format!(
                "{}{}{:08}",
                culture.phone_prefix,
                rng.between(6, 7),
                rng.below(100_000_000)
            ),
            residence_country,
            language: culture.language,
            allow_promo_email: rng.percent(40),
            allow_third_party_email: rng.percent(15),
        }
    }

    /// `spectatorDetails`; `email` is `None` for the "no owner e-mail" story.
    pub(crate) fn write_details(&self, details: &mut JsonObject<'_>, email: Option<&str>) {
        details
            .string("title", self.title)
            .string("firstName", self.first_name)
            .string("lastName", self.last_name)
            .string("dateOfBirth", &self.date_of_birth);
        if let Some(email) = email {
            details.string("email", email);
        }
        details
            .string("nationality", self.nationality)
            .string("idCardNumber", &self.id_card_number)
            .string("phoneNumber", &self.phone_number)
            .string("residenceCountry", self.residence_country)
            .string("language", self.language)
            .object("organizerSpectatorPreference", |preference| {
                preference
                    .boolean("allowPromoEmail", self.allow_promo_email)
                    .boolean("allowThirdPartyEmail", self.allow_third_party_email);
            });
    }

    /// `holder`: the assignee, of whom TIXNGO knows no e-mail.
    pub(crate) fn write_as_holder(&self, holder: &mut JsonObject<'_>) {
        holder
            .string("firstName", self.first_name)
            .string("lastName", self.last_name)
            .string("dateOfBirth", &self.date_of_birth)
            .string("idCardNumber", &self.id_card_number)
            .string("nationality", self.nationality);
    }

    /// `previousOwner` / `initialOwner`.
    pub(crate) fn write_as_owner_reference(&self, owner: &mut JsonObject<'_>, email: &str) {
        owner
            .string("email", email)
            .string("firstName", self.first_name)
            .string("lastName", self.last_name);
    }
}

/// The same address as TIXNGO sometimes relays it: each part capitalized, stray spaces around.
pub(crate) fn sloppy_email(email: &str) -> String {
    let mut sloppy = String::with_capacity(email.len() + 3);
    sloppy.push_str("  ");
    let mut at_part_start = true;
    for character in email.chars() {
        sloppy.push(if at_part_start {
            character.to_ascii_uppercase()
        } else {
            character
        });
        at_part_start = matches!(character, '.' | '@');
    }
    sloppy.push(' ');
    sloppy
}
