//! Three-way merge of note bodies (line-based, by `diffy`): base is the last version both sides
//! agreed on, mine the local text, theirs the server's.

/// The result of merging two edits of one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Both edits fit together.
    Clean(String),
    /// The edits overlap: the user must choose. Both texts are kept by the caller.
    Conflict,
}

pub fn merge3(base: &str, mine: &str, theirs: &str) -> Merge {
    if mine == theirs || theirs == base {
        return Merge::Clean(mine.to_owned());
    }
    if mine == base {
        return Merge::Clean(theirs.to_owned());
    }
    match diffy::merge(base, mine, theirs) {
        Ok(merged) => Merge::Clean(merged),
        Err(_) => Merge::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# Pump 4\n\nInlet pressure: 2.1 bar\n\nNotes:\n- seal worn\n";

    #[test]
    fn edits_to_different_paragraphs_merge() {
        let mine = BASE.replace("2.1 bar", "2.4 bar");
        let theirs = format!("{BASE}- replaced impeller\n");
        assert_eq!(
            merge3(BASE, &mine, &theirs),
            Merge::Clean(format!("{mine}- replaced impeller\n"))
        );
    }

    #[test]
    fn edits_to_the_same_line_conflict() {
        let mine = BASE.replace("2.1 bar", "2.4 bar");
        let theirs = BASE.replace("2.1 bar", "1.9 bar");
        assert_eq!(merge3(BASE, &mine, &theirs), Merge::Conflict);
    }

    #[test]
    fn one_sided_and_identical_edits_take_the_edit() {
        let edited = BASE.replace("worn", "cracked");
        assert_eq!(merge3(BASE, BASE, &edited), Merge::Clean(edited.clone()));
        assert_eq!(merge3(BASE, &edited, BASE), Merge::Clean(edited.clone()));
        assert_eq!(merge3(BASE, &edited, &edited), Merge::Clean(edited));
    }
}
