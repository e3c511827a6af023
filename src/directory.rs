//! The organisation directory: who the units are, how they write their names,
//! which addresses and domains are theirs. Loaded from .csv or .xlsx.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use calamine::{Data, Reader, open_workbook_auto};
use tracing::warn;

use crate::fold::name_key;
use crate::types::OrgId;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read organisation directory {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("organisation directory {path}, line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl DirectoryError {
    pub fn is_transient(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub id: OrgId,
    pub name: String,
    pub aliases: Vec<String>,
    /// Lower case.
    pub emails: Vec<String>,
    /// Lower case, without a leading `@`.
    pub domains: Vec<String>,
    pub category: String,
    pub contact: String,
}

impl Organisation {
    /// The name and every alias.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// Which unit a person meant by what they wrote (an id, a name or an alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    Found(&'a Organisation),
    /// Several units go by that name.
    Ambiguous(Vec<&'a Organisation>),
    /// None does; the closest names, closest first (at most three).
    NotFound(Vec<&'a Organisation>),
}

/// Pairs (long, short) that [`name_key`] folds to the short spelling.
type Synonyms = Vec<(String, String)>;

#[derive(Debug, Clone, Default)]
pub struct Directory {
    orgs: Vec<Organisation>,
    by_email: HashMap<String, usize>,
    /// Every unit's names folded, with the synonyms they were folded with:
    /// content matching compares each line of each form with every name, and
    /// folding them anew each time was 1 % of a campaign's CPU.
    folded: OnceLock<(Synonyms, Vec<Vec<String>>)>,
}

const HEADER: [&str; 7] = [
    "id", "name", "aliases", "emails", "domains", "category", "contact",
];

impl Directory {
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let rows = match ext.as_deref() {
            Some("xlsx") => read_xlsx(path)?,
            _ => read_csv(path)?,
        };
        Self::from_rows(path, rows)
    }

    fn from_rows(path: &Path, rows: Vec<Vec<String>>) -> Result<Self, DirectoryError> {
        let invalid = |line: usize, message: String| DirectoryError::Invalid {
            path: path.to_owned(),
            line,
            message,
        };
        let mut iter = rows.into_iter().enumerate();
        let (_, header) = iter
            .next()
            .ok_or_else(|| invalid(1, "the file is empty".into()))?;
        let header: Vec<String> = header
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let col = |name: &str| header.iter().position(|h| h == name);
        let cols: Vec<Option<usize>> = HEADER.iter().map(|h| col(h)).collect();
        for (i, h) in HEADER.iter().enumerate().take(2) {
            if cols[i].is_none() {
                return Err(invalid(
                    1,
                    format!(
                        "the header row needs a `{h}` column (expected {})",
                        HEADER.join(",")
                    ),
                ));
            }
        }
        let mut dir = Directory::default();
        let mut ids = HashMap::new();
        for (i, row) in iter {
            let line = i + 1;
            let get = |c: usize| {
                cols[c]
                    .and_then(|idx| row.get(idx))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default()
            };
            let list = |c: usize| -> Vec<String> {
                get(c)
                    .split([';', '；'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            if row.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let id = get(0);
            let name = get(1);
            if id.is_empty() || name.is_empty() {
                return Err(invalid(line, "`id` and `name` must not be empty".into()));
            }
            if ids.insert(id.clone(), line).is_some() {
                return Err(invalid(line, format!("id `{id}` is used twice")));
            }
            let emails: Vec<String> = list(3).into_iter().map(|e| e.to_lowercase()).collect();
            for e in &emails {
                if !e.contains('@') {
                    return Err(invalid(line, format!("`{e}` is not a mail address")));
                }
            }
            let org = Organisation {
                id: OrgId(id),
                name,
                aliases: list(2),
                emails,
                domains: list(4)
                    .into_iter()
                    .map(|d| d.trim_start_matches('@').to_lowercase())
                    .collect(),
                category: get(5),
                contact: get(6),
            };
            dir.push(org);
        }
        Ok(dir)
    }

    /// Adds a unit. An address another unit already lists stays the first
    /// one's (mail from it cannot tell the two apart) and is logged, naming both.
    fn push(&mut self, org: Organisation) {
        let idx = self.orgs.len();
        for e in &org.emails {
            match self.by_email.get(e) {
                Some(&first) if first != idx => {
                    let first = &self.orgs[first];
                    warn!(
                        address = %e,
                        first = %first.id,
                        second = %org.id,
                        "the organisation directory lists {e} for both {} ({}) and {} ({}); mail from it is matched to {}",
                        first.name, first.id, org.name, org.id, first.name
                    );
                }
                Some(_) => {}
                None => {
                    self.by_email.insert(e.clone(), idx);
                }
            }
        }
        self.orgs.push(org);
        self.folded = OnceLock::new();
    }

    /// The directory bundled with the example configuration (江苏 units).
    pub fn example() -> Self {
        let text = include_str!("../examples/organisations.csv");
        let rows = parse_csv(text).unwrap_or_default();
        Self::from_rows(Path::new("examples/organisations.csv"), rows).unwrap_or_default()
    }

    pub fn from_orgs(orgs: Vec<Organisation>) -> Self {
        let mut dir = Directory::default();
        for o in orgs {
            dir.push(o);
        }
        dir
    }

    pub fn all(&self) -> &[Organisation] {
        &self.orgs
    }

    /// Each unit's names ([`Organisation::names`]) folded by [`name_key`]
    /// with `synonyms`, in the order of [`Self::all`]. Kept for the synonyms
    /// of the first call (the configuration's); others are folded each time.
    pub fn name_keys(&self, synonyms: &[(String, String)]) -> Cow<'_, [Vec<String>]> {
        let fold = || -> Vec<Vec<String>> {
            self.orgs
                .iter()
                .map(|o| o.names().map(|n| name_key(n, synonyms)).collect())
                .collect()
        };
        let (kept_for, keys) = self.folded.get_or_init(|| (synonyms.to_vec(), fold()));
        if kept_for.as_slice() == synonyms {
            Cow::Borrowed(keys)
        } else {
            Cow::Owned(fold())
        }
    }

    pub fn get(&self, id: &OrgId) -> Option<&Organisation> {
        self.orgs.iter().find(|o| &o.id == id)
    }

    pub fn by_email(&self, addr: &str) -> Option<&Organisation> {
        self.by_email
            .get(&addr.to_lowercase())
            .map(|&i| &self.orgs[i])
    }

    /// The unit `text` names: its id (any case), or its name or an alias
    /// compared folded (width, punctuation, spacing, 科学技术 → 科技 and the
    /// other `synonyms`). Nothing is guessed: a near miss is not found, and
    /// the closest names are offered instead.
    pub fn lookup(&self, text: &str, synonyms: &[(String, String)]) -> Lookup<'_> {
        let text = text.trim();
        if let Some(o) = self
            .orgs
            .iter()
            .find(|o| o.id.as_str().eq_ignore_ascii_case(text))
        {
            return Lookup::Found(o);
        }
        let key = name_key(text, synonyms);
        if key.is_empty() {
            return Lookup::NotFound(Vec::new());
        }
        let keys = self.name_keys(synonyms);
        let hits: Vec<&Organisation> = self
            .orgs
            .iter()
            .zip(keys.iter())
            .filter(|(_, ks)| ks.contains(&key))
            .map(|(o, _)| o)
            .collect();
        match hits.len() {
            0 => {}
            1 => return Lookup::Found(hits[0]),
            _ => return Lookup::Ambiguous(hits),
        }
        let wanted: Vec<char> = key.chars().collect();
        let near = (wanted.len() / 2).max(2);
        let mut scored: Vec<(usize, &Organisation)> = self
            .orgs
            .iter()
            .zip(keys.iter())
            .filter_map(|(o, ks)| {
                let d = ks
                    .iter()
                    .map(|k| edit_distance(&wanted, &k.chars().collect::<Vec<_>>()))
                    .min()?;
                (d <= near).then_some((d, o))
            })
            .collect();
        scored.sort_by_key(|(d, _)| *d);
        Lookup::NotFound(scored.into_iter().take(3).map(|(_, o)| o).collect())
    }

    /// Organisations that list the domain of `addr` (or a parent of it).
    pub fn by_domain(&self, addr: &str) -> Vec<&Organisation> {
        let Some(domain) = addr.rsplit_once('@').map(|(_, d)| d.to_lowercase()) else {
            return Vec::new();
        };
        self.orgs
            .iter()
            .filter(|o| {
                o.domains
                    .iter()
                    .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
            })
            .collect()
    }
}

/// Levenshtein distance in characters.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn read_csv(path: &Path) -> Result<Vec<Vec<String>>, DirectoryError> {
    let bytes = std::fs::read(path).map_err(|e| DirectoryError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    // Excel on a Chinese Windows saves CSV as GBK; accept that as well as UTF-8.
    let text = match std::str::from_utf8(&bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::GB18030.decode(&bytes).0.into_owned(),
    };
    parse_csv(&text).map_err(|e| DirectoryError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, csv::Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for rec in rdr.records() {
        rows.push(rec?.iter().map(str::to_owned).collect());
    }
    Ok(rows)
}

fn read_xlsx(path: &Path) -> Result<Vec<Vec<String>>, DirectoryError> {
    let err = |message: String| DirectoryError::Read {
        path: path.to_owned(),
        message,
    };
    let mut wb = open_workbook_auto(path).map_err(|e| err(e.to_string()))?;
    let sheet = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| err("the workbook has no sheet".into()))?;
    let range = wb.worksheet_range(&sheet).map_err(|e| err(e.to_string()))?;
    Ok(range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_directory_loads_with_emails_and_domains() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/organisations.csv");
        let d = Directory::load(&p).unwrap();
        assert!(d.all().len() >= 26);
        assert_eq!(
            d.by_email("NJKJJRCC@nanjing.gov.cn").unwrap().id.as_str(),
            "nj-kjj"
        );
        let by_dom = d.by_domain("someone@mail.kjj.nanjing.gov.cn");
        assert_eq!(by_dom.len(), 1);
        assert_eq!(by_dom[0].id.as_str(), "nj-kjj");
    }

    #[test]
    fn folded_names_follow_the_synonyms_and_a_new_unit() {
        let unit = |id: &str, name: &str| Organisation {
            id: OrgId::from(id),
            name: name.to_owned(),
            aliases: vec![],
            emails: vec![],
            domains: vec![],
            category: String::new(),
            contact: String::new(),
        };
        let syn = vec![("科学技术协会".to_owned(), "科协".to_owned())];
        let mut d = Directory::from_orgs(vec![unit("tz-kx", "泰州市 科学技术协会")]);
        assert_eq!(d.name_keys(&syn).as_ref(), [vec!["泰州市科协".to_owned()]]);
        // Other synonyms than the kept ones are folded for the call.
        assert_eq!(
            d.name_keys(&[]).as_ref(),
            [vec!["泰州市科学技术协会".to_owned()]]
        );
        assert_eq!(d.name_keys(&syn).as_ref(), [vec!["泰州市科协".to_owned()]]);
        d.push(unit("yz-kx", "扬州市科学技术协会"));
        assert_eq!(
            d.name_keys(&syn).as_ref(),
            [vec!["泰州市科协".to_owned()], vec!["扬州市科协".to_owned()]]
        );
    }

    #[test]
    fn xlsx_directory_reads_like_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orgs.xlsx");
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        let rows = [
            HEADER.to_vec(),
            vec![
                "tz-kx",
                "泰州市科学技术协会",
                "泰州市科协；泰州科协",
                "TZKX_DY@126.com",
                "",
                "设区市科协",
                "韩雪",
            ],
        ];
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                ws.write_string(r as u32, c as u16, *v).unwrap();
            }
        }
        wb.save(&path).unwrap();
        let d = Directory::load(&path).unwrap();
        let org = d.by_email("tzkx_dy@126.com").unwrap();
        assert_eq!(org.aliases, ["泰州市科协", "泰州科协"]);
    }

    #[test]
    fn a_unit_is_found_by_id_name_or_alias_and_a_near_miss_offers_the_closest() {
        let d = Directory::example();
        let syn = vec![
            ("科学技术协会".to_owned(), "科协".to_owned()),
            ("科学技术".to_owned(), "科技".to_owned()),
        ];
        let found = |t: &str| match d.lookup(t, &syn) {
            Lookup::Found(o) => o.id.to_string(),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(found("NT-KX"), "nt-kx");
        assert_eq!(found("南通市科协"), "nt-kx");
        assert_eq!(found("南通市 科学技术协会"), "nt-kx");
        assert_eq!(found("南京市科技局"), "nj-kjj");
        assert_eq!(found("“南京科技局”"), "nj-kjj");
        let Lookup::NotFound(near) = d.lookup("南京市科技厅", &syn) else {
            panic!("a near miss is not a match");
        };
        assert_eq!(near[0].id.as_str(), "nj-kjj", "{near:?}");
        assert_eq!(d.lookup("上海市气象局", &syn), Lookup::NotFound(Vec::new()));
        let twice = Directory::from_orgs(vec![
            Organisation {
                id: OrgId::from("a"),
                name: "某某学会".into(),
                aliases: vec![],
                emails: vec![],
                domains: vec![],
                category: String::new(),
                contact: String::new(),
            },
            Organisation {
                id: OrgId::from("b"),
                name: "某某研究院".into(),
                aliases: vec!["某某学会".into()],
                emails: vec![],
                domains: vec![],
                category: String::new(),
                contact: String::new(),
            },
        ]);
        assert!(matches!(twice.lookup("某某学会", &[]), Lookup::Ambiguous(v) if v.len() == 2));
    }

    #[test]
    fn an_address_listed_for_two_units_is_warned_about_naming_both() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Log {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let text = "id,name,aliases,emails\n\
                    nj-kjj,南京市科学技术局,,shared@163.com;njkjj@nanjing.gov.cn\n\
                    nj-kx,南京市科学技术协会,,SHARED@163.com\n";
        let d = tracing::subscriber::with_default(subscriber, || {
            Directory::from_rows(Path::new("x.csv"), parse_csv(text).unwrap()).unwrap()
        });
        let out = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("WARN"), "{out}");
        assert!(out.contains("shared@163.com"), "{out}");
        assert!(out.contains("南京市科学技术局 (nj-kjj)"), "{out}");
        assert!(out.contains("南京市科学技术协会 (nj-kx)"), "{out}");
        assert_eq!(d.by_email("shared@163.com").unwrap().id.as_str(), "nj-kjj");
        assert_eq!(out.lines().count(), 1, "one warning: {out}");
    }

    #[test]
    fn a_missing_name_column_is_reported() {
        let rows = vec![vec!["id".into(), "title".into()]];
        let err = Directory::from_rows(Path::new("x.csv"), rows).unwrap_err();
        assert!(err.to_string().contains("`name`"), "{err}");
    }
}
