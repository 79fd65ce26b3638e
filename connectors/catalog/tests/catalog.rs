//! The catalog on a real directory: durable changes, reopening, refusals.

use drover_catalog::{Admission, Catalog, CatalogError, Device, Group, Role, User};

fn device(id: &str, group: Option<&str>) -> Device {
    Device {
        id: id.to_owned(),
        name: Some(format!("van {id}")),
        group: group.map(str::to_owned),
        created_ms: 1,
        ..Device::default()
    }
}

#[test]
fn changes_survive_a_reopen_and_ids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    {
        let catalog = Catalog::open(dir.path()).unwrap();
        catalog
            .users
            .insert(
                "admin",
                User {
                    username: "admin".into(),
                    role: Role::Admin,
                    password_hash: "$argon2id$…".into(),
                    created_ms: 1,
                    updated_ms: 1,
                },
            )
            .unwrap();
        catalog
            .devices
            .insert("356307042441013", device("356307042441013", None))
            .unwrap();
        let again = catalog
            .devices
            .insert("356307042441013", device("356307042441013", None));
        assert!(matches!(again, Err(CatalogError::Exists { .. })));
        catalog
            .devices
            .update::<CatalogError>("356307042441013", |d| {
                d.disabled = true;
                Ok(())
            })
            .unwrap();
    }
    let catalog = Catalog::open(dir.path()).unwrap();
    assert_eq!(
        catalog.users.get("admin").map(|u| u.role),
        Some(Role::Admin)
    );
    assert_eq!(catalog.admission("356307042441013"), Admission::Disabled);
    assert_eq!(catalog.admission("000"), Admission::Unknown);
    catalog.devices.remove("356307042441013").unwrap();
    assert!(matches!(
        catalog.devices.remove("356307042441013"),
        Err(CatalogError::NotFound { .. })
    ));
}

#[test]
fn pages_filter_and_say_whether_more_follow() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path()).unwrap();
    for n in 0..10 {
        let group = (n % 2 == 0).then_some("even");
        catalog
            .devices
            .insert(&format!("d{n}"), device(&format!("d{n}"), group))
            .unwrap();
    }
    let even = |d: &Device| d.group.as_deref() == Some("even");
    let (first, more) = catalog.devices.page(None, 3, even);
    assert_eq!(
        first.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d0", "d2", "d4"]
    );
    assert!(more);
    let (rest, more) = catalog.devices.page(Some("d4"), 3, even);
    assert_eq!(
        rest.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d6", "d8"]
    );
    assert!(!more);
    let after_d7 = catalog.devices.scan(Some("d7"), |rows| {
        rows.map(|d| d.id.clone()).collect::<Vec<_>>()
    });
    assert_eq!(after_d7, ["d8", "d9"], "a scan starts after its cursor");
    assert_eq!(catalog.devices.scan(None, |rows| rows.count()), 10);
}

#[test]
fn a_group_in_use_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path()).unwrap();
    let group = Group {
        id: "north".into(),
        name: "North depot".into(),
        created_ms: 1,
        updated_ms: 1,
    };
    catalog.groups.insert("north", group).unwrap();
    catalog
        .devices
        .insert("d1", device("d1", Some("north")))
        .unwrap();
    assert!(matches!(
        catalog.delete_group("north"),
        Err(CatalogError::InUse { .. })
    ));
    catalog.devices.remove("d1").unwrap();
    assert_eq!(catalog.delete_group("north").unwrap().name, "North depot");
}
